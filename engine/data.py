"""Datasets: the real CIFAR-100 (its files are read by `engine.cifar100`) and a synthetic
stand-in, split into train / validation / test.

Everything is held in memory as uint8 tensors ([N, 3, 32, 32] images, int64 labels); the training
loop normalises with `DataBundle.mean` / `DataBundle.std`, which are computed from the images it
actually trains on.

User-facing problems (missing files, corrupt archive, no network, bad sizes) raise `DataError`,
whose message says what is wrong and what to do about it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from engine.catalog import DATASETS
from engine.errors import DataError

NUM_CLASSES = 100
NUM_COARSE = 20


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images (uint8 [N, 3, 32, 32]) with their fine labels (int64 [N])."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 [N, 3, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 [{self.images.shape[0]}], got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> ImageSet:
        """The images at `index` (a 1-D integer tensor), in that order."""
        index = torch.as_tensor(index, dtype=torch.int64)
        return ImageSet(self.images[index], self.labels[index])


@dataclass(frozen=True, eq=False)
class DataBundle:
    """Everything training needs: the three splits, class names and normalisation statistics."""

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    class_names: list[str]
    coarse_names: list[str]
    fine_to_coarse: list[int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def synthetic(self) -> bool:
        return self.name == "synthetic"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


Loaded = tuple[ImageSet, ImageSet, list[str], list[str], list[int]]


# --------------------------------------------------------------------------- synthetic data

_SYN_SHIFT = 4  # samples are shifted by up to this many pixels in x and y
_SYN_VARIANTS = 16  # jittered renderings of each class's prototype
_SYN_BANK = 1024  # clutter + noise images shared by all samples
_SYN_CANVAS = 32 + 2 * _SYN_SHIFT


def _uniform(g: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=g)


def _blobs(
    cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor, col: torch.Tensor, size: int
) -> torch.Tensor:
    """Sum of Gaussian colour blobs: cx, cy, r [B, K]; col [B, K, 3] -> [B, 3, size, size]."""
    coords = torch.arange(size, dtype=torch.float32)
    inv = (-0.5 / r.square())[..., None]
    gx = torch.exp((coords - cx[..., None]).square() * inv)  # [B, K, W]
    gy = torch.exp((coords - cy[..., None]).square() * inv)  # [B, K, H]
    maps = gy[..., :, None] * gx[..., None, :]  # [B, K, H, W]
    return torch.einsum("bkc,bkhw->bchw", col, maps)


def _synthetic_canvases(g: torch.Generator) -> torch.Tensor:
    """[classes * variants * 2 (flip), 3, canvas, canvas] float images, centred on 0.

    Classes come in 20 groups of 5: a group shares two blobs and the grating's orientation, so
    telling the 5 fine classes of a group apart takes their own two blobs and grating frequency,
    phase and colour (like CIFAR-100's superclasses, coarse is easier than fine).
    """
    c, v, s, m = NUM_CLASSES, _SYN_VARIANTS, _SYN_SHIFT, NUM_CLASSES // NUM_COARSE
    group = torch.arange(c) // m
    u = _uniform
    gcx, gcy, gr = u(g, 5, 26, NUM_COARSE, 2), u(g, 5, 26, NUM_COARSE, 2), u(g, 3, 6, NUM_COARSE, 2)
    gcol = u(g, -0.5, 0.5, NUM_COARSE, 2, 3)
    angle = u(g, 0, torch.pi, NUM_COARSE)[group]
    cx = torch.cat([gcx[group], u(g, 5, 26, c, 2)], 1)  # [C, 4]
    cy = torch.cat([gcy[group], u(g, 5, 26, c, 2)], 1)
    r = torch.cat([gr[group], u(g, 2.5, 5, c, 2)], 1)
    col = torch.cat([gcol[group], u(g, -0.4, 0.4, c, 2, 3)], 1)
    freq = u(g, 1.5, 4.5, c) * (2 * torch.pi / 32)
    phase = u(g, 0, 2 * torch.pi, c)
    wcol = u(g, -0.2, 0.2, c, 3)
    base = u(g, -0.06, 0.06, c, 3)

    def per_variant(x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(v, 0)

    k = cx.shape[1]
    img = _blobs(
        per_variant(cx) + s + 1.0 * torch.randn(c * v, k, generator=g),
        per_variant(cy) + s + 1.0 * torch.randn(c * v, k, generator=g),
        per_variant(r) * u(g, 0.7, 1.3, c * v, k),
        per_variant(col) * u(g, 0.6, 1.4, c * v, k, 3),
        _SYN_CANVAS,
    )
    coords = torch.arange(_SYN_CANVAS, dtype=torch.float32) - s
    fx = per_variant(freq * torch.cos(angle))[:, None, None]
    fy = per_variant(freq * torch.sin(angle))[:, None, None]
    ph = per_variant(phase)[:, None, None] + 0.4 * torch.randn(c * v, 1, 1, generator=g)
    wave = torch.cos(fx * coords[None, None, :] + fy * coords[None, :, None] + ph)
    img += wave[:, None] * per_variant(wcol)[:, :, None, None]
    img += per_variant(base)[:, :, None, None]
    return torch.stack([img, img.flip(-1)], 1).flatten(0, 1)


def _synthetic_bank(g: torch.Generator) -> torch.Tensor:
    """[bank, 3, 32, 32]: three random clutter blobs plus Gaussian pixel noise, centred on 0."""
    b, k = _SYN_BANK, 3
    clutter = _blobs(
        _uniform(g, 0, 32, b, k),
        _uniform(g, 0, 32, b, k),
        _uniform(g, 1.5, 4, b, k),
        _uniform(g, -0.25, 0.25, b, k, 3),
        32,
    )
    return clutter + 0.1 * torch.randn(b, 3, 32, 32, generator=g)


def _synthetic_samples(
    canvases: torch.Tensor, bank: torch.Tensor, n: int, g: torch.Generator
) -> ImageSet:
    labels = (torch.arange(n) % NUM_CLASSES)[torch.randperm(n, generator=g)]
    which = (labels * _SYN_VARIANTS + torch.randint(_SYN_VARIANTS, (n,), generator=g)) * 2
    which += torch.randint(2, (n,), generator=g)  # horizontal flip
    side = 2 * _SYN_SHIFT + 1
    shift = torch.randint(side * side, (n,), generator=g)
    noise = torch.randint(bank.shape[0], (n,), generator=g)
    # colour: contrast times a random mix of the prototype's channels (colour is only a weak cue)
    mix = _uniform(g, 0.0, 0.1, n, 1, 1)
    colour = (1 - mix) * torch.eye(3) + mix * 0.7 * torch.randn(n, 3, 3, generator=g)
    colour *= _uniform(g, 0.6, 1.4, n, 1, 1) * 255
    # 255 * (0.5 + brightness + background tint) + 0.5 so that truncation rounds
    offset = (0.5 + _uniform(g, -0.08, 0.08, n, 1) + _uniform(g, -0.12, 0.12, n, 3)) * 255 + 0.5
    bank = bank * 255
    images = torch.empty(n, 3, 32, 32, dtype=torch.uint8)
    # one vectorised pass per shift (81 of them), never one per image
    for k in range(side * side):
        idx = (shift == k).nonzero().flatten()
        if idx.numel() == 0:
            continue
        dy, dx = divmod(k, side)
        crop = canvases[:, :, dy : dy + 32, dx : dx + 32][which[idx]].view(-1, 3, 32 * 32)
        out = bank[noise[idx]].view(-1, 3, 32 * 32)
        out += offset[idx][:, :, None]
        out.baddbmm_(colour[idx], crop)
        images[idx] = out.clamp_(0, 255).view(-1, 3, 32, 32).to(torch.uint8)
    return ImageSet(images, labels)


def make_synthetic(seed: int = 0, n_train: int = 10_000, n_test: int = 2_000) -> Loaded:
    """A procedurally generated, learnable 100-class stand-in for CIFAR-100 (no files needed).

    Each class is a prototype of four colour blobs and an oriented colour grating on a tinted
    background; the 5 classes of a group (20 groups) share two blobs and the grating's
    orientation. A sample is one of 16 jittered renderings of its class's prototype (blob places,
    sizes, colours and grating phase vary), flipped horizontally at random, shifted by up to 4 px,
    with a random partial mix of its colour channels, random contrast, brightness and tint, three
    random clutter blobs and Gaussian noise. Class identity survives horizontal flips and small
    shifts (the usual CIFAR augmentations). Deterministic in `seed` (any number of threads);
    classes are balanced (n // 100 or one more each); fine class c belongs to group c // 5.
    About 0.3-0.5 s for the default sizes on 2 CPU cores.
    """
    g = torch.Generator().manual_seed(seed)
    # One thread: the pieces are small, so threads only add synchronisation (many times slower
    # when the cores are busy) and could change float rounding, hence the pixels.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        canvases = _synthetic_canvases(g)
        bank = _synthetic_bank(g)
        train = _synthetic_samples(canvases, bank, n_train, g)
        test = _synthetic_samples(canvases, bank, n_test, g)
    finally:
        torch.set_num_threads(threads)
    fine_names = [f"synthetic-{i:03d}" for i in range(NUM_CLASSES)]
    coarse_names = [f"synthetic-group-{i:02d}" for i in range(NUM_COARSE)]
    mapping = [i // (NUM_CLASSES // NUM_COARSE) for i in range(NUM_CLASSES)]
    return train, test, fine_names, coarse_names, mapping


# --------------------------------------------------------------------------- splitting


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """`n` indices into `labels`, as class-balanced as possible, chosen at random (seeded).

    Every class gets floor(n / classes) or one more, except classes with too few examples, which
    give all they have (the rest is spread over the others). Which classes get the extra one and
    which examples are picked depend on `seed`. Returned sorted ascending.
    """
    labels = torch.as_tensor(labels).flatten()
    total = labels.shape[0]
    if not 0 <= n <= total:
        raise ValueError(f"cannot pick {n} of {total} examples")
    if n == 0:
        return torch.empty(0, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    k = classes.shape[0]
    alloc = torch.zeros(k, dtype=torch.int64)
    remaining = n
    while remaining > 0:  # water-filling: at most `k` rounds
        open_ = (alloc < counts).nonzero().flatten()
        q = remaining // open_.shape[0]
        if q == 0:  # fewer left than open classes: one more each for a random few
            pick = open_[torch.randperm(open_.shape[0], generator=g)[:remaining]]
            alloc[pick] += 1
            break
        add = torch.minimum(counts[open_] - alloc[open_], torch.tensor(q))
        alloc[open_] += add
        remaining -= int(add.sum())
    # a random rank within each class: shuffle, then stable-sort by class
    perm = torch.randperm(total, generator=g)
    order = perm[torch.sort(inverse[perm], stable=True).indices]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(total, dtype=torch.int64)
    rank[order] = torch.arange(total) - starts[inverse[order]]
    return (rank < alloc[inverse]).nonzero().flatten()


def split_train_val(
    labels: torch.Tensor, val_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint (train, val) index tensors covering all of `labels`; val is stratified. Sorted."""
    labels = torch.as_tensor(labels).flatten()
    val = stratified_indices(labels, val_size, seed)
    keep = torch.ones(labels.shape[0], dtype=torch.bool)
    keep[val] = False
    return keep.nonzero().flatten(), val


def channel_stats(
    images: torch.Tensor, chunk: int = 4096
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and (population) std of uint8 images [N, 3, H, W], in [0, 1].

    Exact: computed from per-channel histograms of the 256 pixel values (fast, little memory).
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"need uint8 images [N>0, C, H, W], got {images.dtype} {images.shape}")
    hist = torch.zeros(images.shape[1], 256, dtype=torch.float64)
    for c in range(images.shape[1]):
        for i in range(0, images.shape[0], chunk):
            hist[c] += torch.bincount(images[i : i + chunk, c].reshape(-1), minlength=256)
    values = torch.arange(256, dtype=torch.float64) / 255
    count = hist.sum(1)
    mean = (hist * values).sum(1) / count
    var = (hist * (values - mean[:, None]).square()).sum(1) / count
    m, sd = mean.tolist(), var.sqrt().tolist()
    return (m[0], m[1], m[2]), (sd[0], sd[1], sd[2])


# --------------------------------------------------------------------------- entry point


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{name} must be an integer, got {value!r}")
    return value


def read_synthetic_source(
    data_dir: str | os.PathLike[str] | None, *, download: bool, progress: bool
) -> Loaded:
    """The synthetic dataset (always generated with seed 0; the arguments are not used)."""
    return make_synthetic(0)


def load_data(
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    val_size: int = 5000,
    subset: int | None = None,
    seed: int = 0,
    download: bool = True,
    progress: bool = True,
) -> DataBundle:
    """Load a dataset and split it.

    `val_size` training images (stratified, chosen by `seed`) are held out as the validation set;
    `subset`, if given, keeps only that many of the remaining training images (stratified). The
    test set is always complete. The synthetic dataset is the same for every `seed` (it is
    generated with seed 0); `seed` only chooses the split.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r} (valid: {', '.join(DATASETS.names())})")
    source = DATASETS.get(dataset).load()
    train_all, test, names, coarse, mapping = source(data_dir, download=download, progress=progress)

    n = len(train_all)
    val_size = _check_int("val_size", val_size)
    if not 0 <= val_size < n:
        raise DataError(
            f"val_size={val_size} is out of range: use 0..{n - 1} "
            f"({dataset} has {n} training images)"
        )
    train_idx, val_idx = split_train_val(train_all.labels, val_size, seed)
    train, val = train_all.subset(train_idx), train_all.subset(val_idx)
    if subset is not None:
        subset = _check_int("subset", subset)
        if not 1 <= subset <= len(train):
            raise DataError(
                f"subset={subset} is out of range: use 1..{len(train)} "
                f"(the training images left after holding out val_size={val_size})"
            )
        pick = stratified_indices(train.labels, subset, seed + 1_000_003)
        train = train.subset(pick)
    mean, std = channel_stats(train.images)
    return DataBundle(dataset, train, val, test, names, coarse, mapping, mean, std)
