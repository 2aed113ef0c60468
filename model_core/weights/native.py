"""Our native model format: ``<name>.safetensors`` plus a JSON model card ``<name>.card.json``.

The card holds the config, the sha256 of the weights file (verified before the weights are parsed),
provenance, intended use, metrics and decision thresholds. Frozen multiway modules stored once in the
model (tied) are stored once in the file too (only their ``.A.`` tensors) and listed in the card.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model_core.errors import CheckpointError, IntegrityError
from model_core.network.config import MomeConfig
from model_core.network.mome import Mome
from model_core.network.multiway import BRANCHES
from model_core.weights.card_seal import SEAL_KEY, verify_card_seal, write_card
from model_core.weights.official import load_official_state_dict

log = logging.getLogger(__name__)

CARD_FORMAT = "napari-mome-model-card"
CARD_VERSION = 1
RESEARCH_USE = ("Research use only. Not a medical device; not for clinical decisions. "
                "Outputs are decision support for research and must not replace a radiologist.")
SYNTHETIC_NOTE = "Trained on synthetic phantoms, not for clinical use."


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "config": dict, "weights_sha256": str, "weights_file": str, "tied_modules": list, "name": str,
    "description": str, "intended_use": str, "provenance": dict, "training": dict, "metrics": dict,
    "thresholds": dict, "preprocess": dict, "created": str, "card_sha256": str, "format_version": int,
}
_JSON_NAME: dict[Any, str] = {dict: "object", str: "string", list: "array", int: "integer"}


def card_path_for(weights: str | os.PathLike[str]) -> Path:
    """``model.safetensors`` -> ``model.card.json``."""
    p = Path(weights)
    return p.with_name(p.name.removesuffix(".safetensors") + ".card.json")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class ModelCard:
    """The JSON model card. ``thresholds`` holds e.g. the BI-RADS 4 downgrade threshold record;
    ``preprocess`` the preprocessing options the model was trained with, as plain data (empty: the
    defaults), which inference must use too (:func:`model_core.engine.card.preprocess_options`)."""

    config: dict[str, Any]
    weights_sha256: str = ""
    weights_file: str = ""
    tied_modules: list[str] = field(default_factory=list)
    name: str = "mome"
    description: str = ""
    intended_use: str = RESEARCH_USE
    provenance: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    card_sha256: str = ""
    format: str = CARD_FORMAT
    format_version: int = CARD_VERSION
    extras: dict[str, Any] = field(default_factory=dict)
    """Top-level card fields this version does not know (e.g. ``notes``); kept, written back and sealed."""

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        return {**d.pop("extras"), **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "model card") -> ModelCard:
        """Build a card from its JSON dict, checking the type of every known field.

        Raises:
            CheckpointError: not a card, a newer format, or a field of the wrong JSON type.
        """
        if not isinstance(d, Mapping):
            raise CheckpointError(f"{source}: a model card must be a JSON object, got {type(d).__name__}")
        if d.get("format") != CARD_FORMAT:
            raise CheckpointError(f"{source}: not a napari-mome model card (format={d.get('format')!r})")
        if int(d.get("format_version", 0)) > CARD_VERSION:
            raise CheckpointError(f"{source}: card format version {d.get('format_version')} is newer than "
                                  f"this package supports ({CARD_VERSION})")
        if "config" not in d:
            raise CheckpointError(f"{source}: the model card has no 'config'")
        for key, value in d.items():
            want = _FIELD_TYPES.get(key)
            if want is not None and not isinstance(value, want):
                raise CheckpointError(f"{source}: card field {key!r} must be a JSON "
                                      f"{_JSON_NAME[want]}, got {type(value).__name__}")
        known = set(cls.__dataclass_fields__) - {"extras"}
        return cls(**{k: v for k, v in d.items() if k in known},
                   extras={k: v for k, v in d.items() if k not in known})

    @property
    def mome_config(self) -> MomeConfig:
        """The network configuration (checked against the memory budget).

        Raises:
            ConfigError: the recorded config is not a valid :class:`MomeConfig`.
            BudgetError: the config asks for a model too large to build (limit named in the message).
        """
        return MomeConfig.checked_from_dict(self.config, "model card config")

    @property
    def phantom_world(self) -> str:
        """The phantom world (``mome phantom --world``) of the training cohorts; ``v1`` when they do not
        name one (cohorts written before worlds existed, or cohorts that are not phantoms).

        Raises:
            CheckpointError: the training cohorts come from different worlds.
        """
        cohorts = [*self.training.get("train_cohorts", []), *self.training.get("val_cohorts", [])]
        worlds = {str(c.get("world", "v1")) for c in cohorts if isinstance(c, Mapping) and c.get("synthetic")}
        if len(worlds) > 1:
            raise CheckpointError(f"the model card's training cohorts come from several phantom worlds "
                                  f"{sorted(worlds)}")
        return worlds.pop() if worlds else "v1"


def compact_state_dict(model: Mome) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state dict with tied frozen copies stored once (``.B.``/``.C.`` keys dropped)."""
    tied = [name for name, mw in model.frozen_multiways() if mw.is_tied]
    drop = tuple(f"{name}.{w}." for name in tied for w in BRANCHES[1:])
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if not k.startswith(drop)}
    return sd, tied


def expand_state_dict(sd: Mapping[str, torch.Tensor], tied: list[str]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`compact_state_dict`: recreate ``.B.``/``.C.`` keys from ``.A.``."""
    out = dict(sd)
    for name in tied:
        prefix = f"{name}.A."
        for k in [k for k in sd if k.startswith(prefix)]:
            for w in BRANCHES[1:]:
                out[f"{name}.{w}.{k[len(prefix):]}"] = sd[k]
    return out


def save_native(model: Mome, path: str | os.PathLike[str], card: ModelCard | None = None,
                dtype: torch.dtype | None = None) -> ModelCard:
    """Write ``path`` (safetensors) and its model card; returns the card as written.

    Args:
        dtype: store floating tensors in this dtype (e.g. ``torch.float16`` to keep demo weights small);
            they load back into the model's float32 parameters.
    """
    path = Path(path)
    sd, tied = compact_state_dict(model)
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata={"format": CARD_FORMAT, "config": model.cfg.to_json()})
    card = card or ModelCard(config=model.cfg.to_dict())
    card.config = model.cfg.to_dict()
    card.weights_file = path.name
    card.weights_sha256 = sha256_file(path)
    card.tied_modules = tied
    card.created = card.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    save_card(path, card)
    log.info("wrote %s (%s) and its card", path, card.weights_sha256[:12])
    return card


def save_card(weights: str | os.PathLike[str], card: ModelCard) -> Path:
    """Write ``card`` beside ``weights`` (``<name>.card.json``), sealed (:func:`write_card`; the seal is set on
    ``card`` too); the weights file is not touched."""
    path = card_path_for(weights)
    card.card_sha256 = write_card(path, card.to_dict())[SEAL_KEY]
    return path


def read_card(weights: str | os.PathLike[str]) -> ModelCard:
    """The card beside ``weights``, its seal verified (:mod:`model_core.weights.card_seal`).

    Raises:
        CheckpointError: missing or unreadable card, or a field of the wrong type.
        CardIntegrityError: the card is unsealed or was changed after sealing.
    """
    cp = card_path_for(weights)
    if not cp.is_file():
        raise CheckpointError(f"{weights}: model card {cp.name} not found beside the weights")
    try:
        data = json.loads(cp.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{cp}: unreadable model card ({exc})") from exc
    card = ModelCard.from_dict(data, str(cp))
    verify_card_seal(data, str(cp))
    return card


def load_native(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> tuple[Mome, ModelCard]:
    """Verify the sha256 against the card, then build the model and load the weights strictly.

    Raises:
        IntegrityError: the weights file's sha256 differs from the card's (tampered or corrupted).
        CheckpointError: missing card, unreadable file, or keys/shapes not matching the card's config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    card = read_card(path)
    digest = sha256_file(path)
    if digest != card.weights_sha256:
        raise IntegrityError(f"{path}: sha256 {digest} does not match the model card ({card.weights_sha256}); "
                             "the file is corrupted or was modified")
    try:
        sd = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc
    model = Mome(card.mome_config, init=False)
    load_official_state_dict(model, expand_state_dict(sd, card.tied_modules))
    model.to(map_location)
    return model.eval(), card
