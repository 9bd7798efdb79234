"""A check shared by the model tests: two computations give the same output and the same gradients."""

from __future__ import annotations

from typing import Callable, Sequence

import torch


def assert_same_function(ours: Callable[[], torch.Tensor], reference: Callable[[], torch.Tensor],
                         weights: Sequence[torch.Tensor]) -> None:
    """``ours()`` and ``reference()`` give the same tensor, and the same gradients for ``weights`` of a
    loss that weighs every output element differently (so a gradient sent to the wrong place shows)."""
    results = []
    for forward in (ours, reference):
        out = forward()
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
        results.append((out.detach(), *torch.autograd.grad(loss, weights)))
    for got, expected in zip(*results):
        torch.testing.assert_close(got, expected)
