"""The per-image reference augmentations (engine.augment) against their definitions."""

from __future__ import annotations

import torch

from engine.augment import build_pipeline
from engine.catalog import AUGMENTATIONS


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    torch.manual_seed(0)
    img = torch.randint(1, 256, (3, 32, 32), dtype=torch.uint8)  # no zeros inside the image
    crop = AUGMENTATIONS.build_reference("random_crop", padding=4)
    padded = torch.zeros(3, 40, 40, dtype=torch.uint8)
    padded[:, 4:36, 4:36] = img
    windows = {(i, j): padded[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)}
    offsets = set()
    for _ in range(200):
        out = crop(img)
        match = [k for k, w in windows.items() if torch.equal(w, out)]
        assert len(match) == 1
        offsets.add(match[0])
    assert len(offsets) > 40  # all 81 offsets are possible; 200 draws reach many


def test_hflip_flips_half_the_time_and_exactly():
    torch.manual_seed(0)
    img = torch.arange(3 * 32 * 32, dtype=torch.int64).reshape(3, 32, 32).to(torch.uint8)
    flip = AUGMENTATIONS.build_reference("hflip")
    flipped = sum(torch.equal(flip(img), img.flip(-1)) for _ in range(400))
    assert 150 < flipped < 250
    assert torch.equal(AUGMENTATIONS.build_reference("hflip", p=1.0)(img), img.flip(-1))


def test_empty_pipeline_is_the_identity():
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    assert torch.equal(build_pipeline([])(img), img)


def test_rotation_by_zero_degrees_is_identity_and_keeps_dtype():
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = AUGMENTATIONS.build_reference("rotation", degrees=0.0)(img)
    assert out.dtype == torch.uint8 and torch.equal(out, img)
    pipeline = build_pipeline(
        [("random_crop", {"padding": 4}), ("hflip", {}), ("rotation", {"degrees": 15})]
    )
    assert pipeline(img).shape == (3, 32, 32)
