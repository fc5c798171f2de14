"""Device-side pieces (engine.device): the normaliser against the formula."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_normalizer_is_the_formula_in_the_steps_layout_and_dtype(dtype, channels_last):
    """(x / 255 - mean) / std per channel, written in one kernel straight into the step's memory
    format and dtype (bf16 under autocast: what a cast of the fp32 result would give)."""
    from engine.device import Normalizer

    mean, std = (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = Normalizer(mean, std, torch.device("cpu"), channels_last, dtype)(images)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    expected = (images.double() / 255 - m.double()) / s.double()
    assert out.dtype == dtype and out.shape == images.shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)
    tolerance = 1e-5 if dtype == torch.float32 else 2**-7 * expected.abs().max().item()
    assert (out.double() - expected).abs().max().item() <= tolerance
