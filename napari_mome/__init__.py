"""napari-mome: the MOME multiparametric breast MRI model in napari. Research use only.

Kept tiny on purpose: importing this package imports neither napari nor Qt. The npe2 manifest
(``napari.yaml``) points at the submodules (``_reader``, widgets, sample data).
"""

__version__ = "0.1.0"
