"""3-D convolutional tokenizer ("stem") of one modality (docs/model.md, *Network*).

``(B, C, X, Y, Z) -> (B, N, D)`` with ``N = prod(ceil(n / 16))`` tokens, flattened row-major over
``(X', Y', Z')`` with ``Z'`` fastest. Three convs (k3 s2 p1, no bias) each followed by InstanceNorm
(affine-free, eps 1e-5) and ReLU, then MaxPool(k3 s2 p1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_INPLACE_BYTES = 256 * 2**20
"""Feature maps above this size are normalised in place when no gradient is recorded."""


def _instance_norm_relu(x: torch.Tensor, eps: float) -> torch.Tensor:
    """InstanceNorm3d (no affine, biased variance) followed by ReLU; ``x`` is ``(B, C, X, Y, Z)``.

    With one sample, instance norm is exactly batch norm in training mode without running statistics,
    whose channels-last kernel is ~3x faster on CPU than the instance-norm path. Without autograd, maps
    above :data:`_INPLACE_BYTES` (the DCE conv1 output is 400 MB at paper size) are normalised in place
    instead, which keeps the forward's peak memory one feature map lower.
    """
    grad = torch.is_grad_enabled() and x.requires_grad
    if not grad and x.numel() * x.element_size() > _INPLACE_BYTES:
        var, mean = torch.var_mean(x, dim=(2, 3, 4), keepdim=True, correction=0)
        return x.sub_(mean).mul_(var.add_(eps).rsqrt_()).relu_()
    if x.shape[0] == 1:
        y = F.batch_norm(x, None, None, training=True, eps=eps)
    else:
        y = F.instance_norm(x, eps=eps)
    return F.relu(y) if grad else y.relu_()


class Tokenizer(nn.Module):
    """Conv stem of one modality. Submodule names reproduce the authors' ``stem.{0,3,6}`` keys.

    Args:
        in_chans: input channels (DCE 6, DWI/T2 1).
        embed_dim: output width D.
        widths: widths of the first two convs (64, 128 in the paper).
        with_cls: own the CLS token (DCE only).
        eps: InstanceNorm epsilon.
    """

    def __init__(
        self, in_chans: int, embed_dim: int, widths: tuple[int, int] = (64, 128), with_cls: bool = False,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if with_cls:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        else:
            self.register_parameter("cls_token", None)
        w1, w2 = widths
        self.stem = nn.Sequential(
            nn.Conv3d(in_chans, w1, 3, 2, 1, bias=False),
            nn.Identity(), nn.Identity(),  # IN + ReLU (stateless, applied functionally)
            nn.Conv3d(w1, w2, 3, 2, 1, bias=False),
            nn.Identity(), nn.Identity(),
            nn.Conv3d(w2, embed_dim, 3, 2, 1, bias=False),
            nn.Identity(), nn.Identity(),
            nn.MaxPool3d(3, 2, 1),
        )
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C, X, Y, Z)``. Returns patch tokens ``(B, N, D)`` (no CLS).

        Runs channels-last (oneDNN's fast 3-D convolution layout); the final permute is then a view.
        """
        x = x.contiguous(memory_format=torch.channels_last_3d)
        for idx in (0, 3, 6):
            x = _instance_norm_relu(self.stem[idx](x), self.eps)
        x = self.stem[9](x)
        return x.permute(0, 2, 3, 4, 1).reshape(x.shape[0], -1, x.shape[1])
