"""Real breast MRI files (tests/data, and ../shared/data/real when present): geometry and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_core.errors import StudyReadError
from model_core.studies import read_study, read_volume
from model_core.studies.dicom_headers import read_header
from napari_mome._reader import napari_get_reader

HERE = Path(__file__).resolve()
LOCAL = HERE.parents[2] / "data" / "real"
SHARED = HERE.parents[3].parent / "shared" / "data" / "real"
BREAST1 = LOCAL / "pyradiomics-breast1"
IMPLANT = SHARED / "slicer-breast-implant" / "MRBreastImplant.nrrd"
TCGA = sorted(
    {p.name: p for d in (SHARED, LOCAL) for p in (d / "tcga-brca-slices" / "dicom").glob("*.dcm")}.values()
)


def test_breast1_spacing_and_label_overlay() -> None:
    image = read_volume(BREAST1 / "breast1_image.nrrd")
    label = read_volume(BREAST1 / "breast1_label.nrrd")
    assert image.data.shape == (45, 120, 21)
    assert image.spacing == pytest.approx((0.664062, 0.664062, 2.1), abs=1e-3)
    assert label.same_grid(image, atol_mm=1e-6)
    assert int((label.data == 1).sum()) == 143 and set(np.unique(label.data)) == {0.0, 1.0}
    # LPS origin (-116.543, -48.145, 9.45) with identity direction: the RAS affine flips x and y
    corner = np.array([-116.54304, -48.144654, 9.45])
    far = (image.affine @ np.r_[44, 119, 0, 1.0])[:3]
    assert far == pytest.approx(corner * [-1, -1, 1], abs=1e-3)
    # the lesion is brighter than the crop on average (label really sits on the lesion)
    assert image.data[label.data == 1].mean() > image.data.mean()
    # napari layers of both get the same world transform
    (_, k_img, _), (_, k_lab, _) = (
        napari_get_reader(str(p))(str(p))[0]
        for p in (BREAST1 / "breast1_image.nrrd", BREAST1 / "breast1_label.nrrd")
    )
    assert k_img["scale"] == pytest.approx(k_lab["scale"]) and k_img["translate"] == pytest.approx(
        k_lab["translate"]
    )


@pytest.mark.skipif(not IMPLANT.is_file(), reason="../shared/data/real not present")
def test_breast_implant_axial_53_slices() -> None:
    vol = read_volume(IMPLANT)
    assert vol.data.shape == (256, 256, 53)
    assert vol.spacing == pytest.approx((1.3672, 1.3672, 4.4), abs=1e-3)
    assert vol.meta["reorientation"]["original_axcodes"] == "RAS"
    assert float(vol.data.min()) == 0.0 and float(vol.data.max()) == 7056.0


def test_tcga_single_slices_refused_clearly() -> None:
    assert len(TCGA) >= 2
    for path in TCGA:
        assert read_header(path) is not None  # real vendor headers parse
        with pytest.raises(StudyReadError, match="single 2-D slice") as err:
            read_volume(path)
        assert path.name in str(err.value)
        with pytest.raises(StudyReadError, match="single 2-D slice is not a study"):
            read_study(path)
        reader = napari_get_reader(str(path))
        assert reader is not None
        with pytest.raises(StudyReadError, match="single 2-D slice"):
            reader(str(path))
    with pytest.raises(StudyReadError, match="single 2-D slice is not a study"):
        read_study(TCGA[0].parent)
