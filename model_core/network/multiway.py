"""Multiway (A/B/C) containers: one copy of a module per modality branch.

A = DCE (incl. CLS), B = DWI, C = T2 (docs/model.md, *Network*). The token sequence is one tensor ``(B, L, D)`` laid
out ``[A | B | C]`` with segment lengths ``(L_A, L_B, L_C)`` (0 for an absent modality); a multiway
module applies branch ``w`` to segment ``w``.

Frozen copies that are equal (the normal case after BEiT-3 initialisation) are stored once: ``B`` and
``C`` are then the very same module object as ``A`` ("tied") and the module runs once over the whole
sequence. ``state_dict()`` still lists the authors' ``.A.``/``.B.``/``.C.`` keys (sharing storage);
``parameters()`` yields each tensor once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

BRANCHES: tuple[str, str, str] = ("A", "B", "C")

Lengths = tuple[int, int, int]


def split_segments(x: torch.Tensor, lengths: Sequence[int]) -> list[torch.Tensor | None]:
    """Views of the three segments of ``x`` ``(B, L, ...)`` (``None`` for zero-length ones)."""
    out: list[torch.Tensor | None] = []
    off = 0
    for n in lengths:
        out.append(x.narrow(1, off, n) if n else None)
        off += n
    return out


class Multiway(nn.Module):
    """Three branch copies of one module; see the module docstring.

    Args:
        factory: builds one copy.
        tied: store one copy shared by all branches.
    """

    def __init__(self, factory: Callable[[], nn.Module], tied: bool = False) -> None:
        super().__init__()
        self.A = factory()
        if tied:
            self.B = self.A
            self.C = self.A
        else:
            self.B = factory()
            self.C = factory()

    def branch(self, index: int) -> nn.Module:
        """The copy used by segment ``index`` (0 = A, 1 = B, 2 = C)."""
        return getattr(self, BRANCHES[index])

    @property
    def is_tied(self) -> bool:
        return self.A is self.B and self.A is self.C

    def tie(self) -> None:
        """Share branch A's copy with B and C (B and C values are discarded)."""
        self.B = self.A
        self.C = self.A

    def untie(self) -> None:
        """Give B and C their own (initially equal) copies."""
        if self.B is self.A:
            self.B = copy.deepcopy(self.A)
        if self.C is self.A or self.C is self.B:
            self.C = copy.deepcopy(self.A)

    def forward(self, x: torch.Tensor, lengths: Lengths) -> torch.Tensor:  # type: ignore[override]
        """Apply each branch to its segment.

        Args:
            x: ``(B, L, D_in)`` with ``L = sum(lengths)``.
            lengths: ``(L_A, L_B, L_C)``.
        Returns:
            ``(B, L, D_out)``.
        """
        if self.is_tied:
            return self.A(x)
        parts = [self.branch(i)(s) for i, s in enumerate(split_segments(x, lengths)) if s is not None]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def multiway_modules(model: nn.Module) -> list[tuple[str, Multiway]]:
    """All multiway containers of ``model`` with their qualified names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Multiway)]
