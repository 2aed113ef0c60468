"""Give DICOM series (and loose files) their study roles: DCE phases, DWI b-values, T2, T1.

Rules, applied in this order to usable series (header data only; every outcome is a
:class:`~model_core.studies.study.RoleDecision` saying why):

1. Ignored: localizers/scouts, MIP/MPR/reformats, derived diffusion maps (ADC, FA, eADC, calculated b).
2. DWI: any diffusion b-value (DiffusionBValue (0018,9087), GE (0043,1039), Siemens (0019,100C), Philips
   (2001,1003)), or a description such as "DWI", "diffusion", "b800". Each volume's b-value comes from the
   split value, the tags, or ``b<number>`` in the description; duplicates keep the first series.
3. DCE, one series with several temporal positions (TemporalPositionIdentifier, TriggerTime,
   AcquisitionTime or AcquisitionNumber split): the one with most phases wins; phase 0 (earliest) is the
   pre-contrast image, the rest are post-contrast.
4. DCE, several single-phase series: those named like DCE ("dyn", "dce", "vibrant", "thrive", "twist",
   "phase N", "pre", "post", "+C", "gad", "contrast") or carrying ContrastBolusAgent, ordered by acquisition
   time (then series number). "pre" is the latest series named pre-contrast before the first one named
   post-contrast, else the earliest (ContrastBolusAgent is often set on every phase, so it does not decide).
5. Subtraction series ("sub", ImageType SUBTRACT) are used as ready subtraction images only when no
   original phases exist (``dce_is_subtraction``).
6. T2: a "T2"/"STIR"/"TIRM"/"HASTE"/"SSFSE" description, else long TE (>= 60 ms) and TR (>= 1500 ms).
7. T1: a remaining non-contrast "T1"/"FLASH"/"VIBE"/"SPGR"/"GRE" series. Everything else is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from model_core.studies.dicom_headers import SeriesInfo, SubVolume
from model_core.studies.study import RoleDecision

_IGNORE = re.compile(
    r"loc(ali[sz]er)?\b|scout|survey|3.?plane|tri.?pilot|\bmip\b|\bmpr\b|reformat|"
    r"\badc\b|apparent|\bfa\b|\beadc\b|exponential|calc(ulated)?[ _-]?b"
)
_IGNORE_TYPES = {"LOCALIZER", "MIP", "REFORMATTED", "PROJECTION IMAGE", "ADC", "FA", "EADC", "CALC_BVALUE"}
DWI_TEXT = re.compile(r"dwi|diff|\bdw\b|ep2d|resolve|\btrace\b|(?<![a-z])b\s*[=_-]?\s*\d{2,4}\b")
B_IN_TEXT = re.compile(r"(?<![a-z])b\s*[=_-]?\s*(\d{1,4})\b")
SUB_TEXT = re.compile(r"\bsub|subtract")
DCE_TEXT = re.compile(
    r"dyn|dce|vibrant|thrive|twist|dynamic|\bph(ase)?\s*\d|\bpre(?![a-z])|\bpost(?![a-z])|\+\s*c\b|\bc\+|"
    r"\bgad|contrast|perfusion"
)
POST_TEXT = re.compile(r"\bpost(?![a-z])|\+\s*c\b|\bc\+|\bgad|with contrast|\bph(ase)?\s*[1-9]")
PRE_TEXT = re.compile(r"\bpre(?![a-z])|precontrast|non.?contrast|without contrast|\bph(ase)?\s*0\b")
T2_TEXT = re.compile(r"t2|stir|tirm|haste|ssfse")
T1_TEXT = re.compile(r"t1|flash|vibe|spgr|\bgre\b|fl3d")
_TEMPORAL_KEYS = ("temporal_position", "trigger_time", "acquisition_time", "acquisition_number")


@dataclass
class Assignment:
    """One volume of one series given a role."""

    series: SeriesInfo
    sub: SubVolume


@dataclass
class Classification:
    dce: list[Assignment] = field(default_factory=list)
    dce_is_subtraction: bool = False
    dwi: dict[float, Assignment] = field(default_factory=dict)
    t2: Assignment | None = None
    t1: Assignment | None = None
    decisions: list[RoleDecision] = field(default_factory=list)


def normalise_text(text: str) -> str:
    """Lower case with ``_``, ``-`` and ``.`` turned into spaces, so word boundaries work on names."""
    return re.sub(r"[_.\-]+", " ", text.lower())


def _text(s: SeriesInfo) -> str:
    return normalise_text(f"{s.first.description} {s.first.protocol}")


def _is_post(s: SeriesInfo) -> bool:
    return bool(s.first.contrast_agent) or bool(POST_TEXT.search(_text(s)))


def _b_of(s: SeriesInfo, sub: SubVolume) -> float | None:
    if sub.split_key == "b_value":
        return sub.split_value
    if sub.slices[0].b_value is not None:
        return sub.slices[0].b_value
    m = B_IN_TEXT.search(_text(s))
    return float(m.group(1)) if m and len(s.volumes) == 1 else None


def _time_key(s: SeriesInfo) -> tuple[float, int]:
    t = s.time
    n = s.first.series_number
    return (t if t is not None else float("inf"), n if n is not None else 1 << 30)


class _Classifier:
    def __init__(self) -> None:
        self.out = Classification()

    def decide(self, s: SeriesInfo, role: str, reason: str, **detail: object) -> None:
        detail.setdefault("series_uid", s.uid)
        detail.setdefault("series_number", s.first.series_number)
        detail.setdefault("description", s.first.description)
        self.out.decisions.append(
            RoleDecision(source=s.label, role=role, reason=reason, detail=dict(detail))
        )

    def dwi(self, series: list[SeriesInfo]) -> None:
        for s in series:
            for sub in s.volumes:
                b = _b_of(s, sub)
                if b is None:
                    self.decide(s, "ignored", "diffusion series without a readable b-value")
                elif b in self.out.dwi:
                    self.decide(s, "ignored", f"b={b:g} already taken by an earlier series", b_value=b)
                else:
                    self.out.dwi[b] = Assignment(s, sub)
                    src = (
                        "split by b-value tag"
                        if sub.split_key == "b_value"
                        else "b-value tag or description"
                    )
                    self.decide(s, "dwi", f"diffusion-weighted, b={b:g} ({src})", b_value=b)

    def dce_multiphase(self, series: list[SeriesInfo], subtraction: bool) -> list[SeriesInfo]:
        """Pick the multi-phase series with most phases; returns the rest."""
        if not series:
            return []
        best = max(series, key=lambda s: (len(s.volumes), -_time_key(s)[1]))
        self.out.dce = [Assignment(best, sub) for sub in best.volumes]
        self.out.dce_is_subtraction = subtraction
        key = best.volumes[0].split_key
        what = (
            "subtraction images"
            if subtraction
            else "phase 0 = pre-contrast (earliest), the rest post-contrast"
        )
        self.decide(
            best,
            "dce",
            f"{len(best.volumes)} temporal positions split by {key}; {what}",
            n_phases=len(best.volumes),
            split_key=key,
        )
        return [s for s in series if s is not best]

    def dce_single(self, series: list[SeriesInfo], subtraction: bool) -> list[SeriesInfo]:
        """Order single-phase DCE candidates by time; returns the ones not used."""
        ordered = sorted(series, key=_time_key)
        if subtraction:
            if len(ordered) < 1:
                return ordered
            self.out.dce = [Assignment(s, s.volumes[0]) for s in ordered]
            self.out.dce_is_subtraction = True
            for i, s in enumerate(ordered):
                self.decide(
                    s, "dce", f"subtraction image {i + 1} of {len(ordered)} (ordered by time)", phase=i
                )
            return []
        named_pre = [i for i, s in enumerate(ordered) if PRE_TEXT.search(_text(s))]
        first_named_post = next(
            (i for i, s in enumerate(ordered) if POST_TEXT.search(_text(s))), len(ordered)
        )
        before = [i for i in named_pre if i < first_named_post]
        pre_idx = before[-1] if before else 0
        rule = "named pre-contrast" if before else "earliest DCE-like series taken as pre-contrast"
        problem = ""
        if len(ordered) - pre_idx < 2:
            problem = "no post-contrast series after the pre-contrast one"
        elif POST_TEXT.search(_text(ordered[pre_idx])):
            problem = "the earliest series is named post-contrast: no pre-contrast image"
        if problem:
            for s in ordered:
                self.decide(s, "ignored", f"DCE-like single phase, but {problem}; not a DCE set")
            return []
        used = ordered[pre_idx:]
        self.out.dce = [Assignment(s, s.volumes[0]) for s in used]
        for s in ordered[:pre_idx]:
            self.decide(s, "ignored", "an earlier series; the latest one named pre-contrast is used")
        for i, s in enumerate(used):
            what = f"pre-contrast ({rule})" if i == 0 else f"post-contrast phase {i}"
            self.decide(s, "dce", f"{what}; single-phase series ordered by acquisition time", phase=i)
        return []

    def single_role(self, series: list[SeriesInfo], role: str, why: str) -> Assignment | None:
        chosen: Assignment | None = None
        for s in sorted(series, key=lambda s: _time_key(s)[1]):
            if chosen is None:
                chosen = Assignment(s, s.volumes[0])
                self.decide(s, role, why)
            else:
                self.decide(
                    s, "ignored", f"another {role.upper()} series was chosen ({chosen.series.label})"
                )
        return chosen


def classify(series: list[SeriesInfo]) -> Classification:
    """Assign roles to usable series (``problem`` empty). Returns the assignments and every decision."""
    c = _Classifier()
    usable = [s for s in series if not s.problem and s.volumes]
    rest: list[SeriesInfo] = []
    dwi: list[SeriesInfo] = []
    for s in usable:
        text = _text(s)
        if _IGNORE.search(text) or _IGNORE_TYPES & set(s.first.image_type):
            c.decide(s, "ignored", "localizer, projection/reformat or derived diffusion map")
        elif any(sub.split_key == "b_value" or sub.slices[0].b_value is not None for sub in s.volumes) or (
            DWI_TEXT.search(text) and not T2_TEXT.search(text.replace("t2*", ""))
        ):
            dwi.append(s)
        else:
            rest.append(s)
    c.dwi(dwi)
    is_sub = [
        bool(SUB_TEXT.search(_text(s)) or {"SUBTRACT", "SUB"} & set(s.first.image_type)) for s in rest
    ]
    multi = [s for s in rest if len(s.volumes) > 1 and s.volumes[0].split_key in _TEMPORAL_KEYS]
    multi_orig = [s for s, sub in zip(rest, is_sub, strict=True) if s in multi and not sub]
    multi_sub = [s for s, sub in zip(rest, is_sub, strict=True) if s in multi and sub]
    single = [s for s in rest if len(s.volumes) == 1]
    dce_single = [
        s
        for s, sub in zip(rest, is_sub, strict=True)
        if s in single and not sub and (DCE_TEXT.search(_text(s)) or s.first.contrast_agent)
    ]
    dce_single_sub = [s for s, sub in zip(rest, is_sub, strict=True) if s in single and sub]
    leftovers: list[SeriesInfo] = []
    if multi_orig:
        leftovers += c.dce_multiphase(multi_orig, subtraction=False)
        leftovers += multi_sub + dce_single + dce_single_sub
    elif dce_single:
        leftovers += c.dce_single(dce_single, subtraction=False) + multi_sub + dce_single_sub
    elif multi_sub:
        leftovers += c.dce_multiphase(multi_sub, subtraction=True) + dce_single_sub
    elif dce_single_sub:
        c.dce_single(dce_single_sub, subtraction=True)
    used = {id(a.series) for a in c.out.dce}
    for s in leftovers:
        if id(s) not in used and not any(d.detail.get("series_uid") == s.uid for d in c.out.decisions):
            c.decide(s, "ignored", "another DCE set was chosen")
    others = [s for s in single if s not in dce_single and s not in dce_single_sub]
    t2 = [
        s
        for s in others
        if T2_TEXT.search(_text(s))
        or (
            not T1_TEXT.search(_text(s))
            and (s.first.echo_time or 0) >= 60
            and (s.first.repetition_time or 0) >= 1500
        )
    ]
    c.out.t2 = c.single_role(t2, "t2", "T2-weighted (description or long TE/TR)")
    t1 = [s for s in others if s not in t2 and T1_TEXT.search(_text(s)) and not _is_post(s)]
    c.out.t1 = c.single_role(t1, "t1", "non-contrast T1-weighted (description)")
    decided = {d.detail.get("series_uid") for d in c.out.decisions}
    for s in usable:
        if s.uid not in decided:
            extra = " (multi-volume series)" if len(s.volumes) > 1 else ""
            c.decide(s, "ignored", f"no role recognised from description {s.first.description!r}{extra}")
    return c.out
