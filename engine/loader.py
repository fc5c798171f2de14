"""Training batches: the device-resident fast path and the per-image torchvision reference.

Both loaders yield, for each step of an epoch, (uint8 images [B, 3, 32, 32], int64 labels [B]) on
the training device, and both draw the same epoch order: a permutation from a generator seeded with
(seed, epoch). So the two paths train on the same batches and differ only in how each image's
augmentation is drawn. Everything random is a pure function of (seed, epoch, position), which is
what makes a resumed run continue bit-exactly (`start(epoch, step)` picks up mid-epoch).

Data-parallel (`rank`, `world_size`; see `engine.distributed`): `batch_size` is the global batch.
Every rank draws the same order and the same augmentation of the whole global batch and keeps its
own contiguous `rank_rows` slice, so the ranks together see exactly the images one process sees.
The torchvision path slices the batch's (index, seed) list instead: its images are independent.

- `device` (DESIGN section 4): the training set lives on the device as uint8; a batch is gathered
  by index and augmented there by `engine.augment_batch` (per-sample parameters from a CPU
  generator seeded with (seed, epoch, step)); no worker processes, no host-device copies of images.
- `torchvision`: a DataLoader over the uint8 images, each image through `engine.augment`'s
  per-image transforms under its own seed; the reference the fast path is checked against.

AugMix with `jsd: true` makes three views of each image: the image as it leaves the augmentations
listed before AugMix, and two independent AugMix draws of it (the augmentations listed after AugMix
then apply to each view). The batch becomes [3B, ...] ordered (all first views, all second views,
all third views); the labels stay [B].
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from engine.augment import build_pipeline
from engine.augment_batch import build_batch_pipeline, build_ops, draw_params
from engine.batch_base import Params, upload
from engine.catalog import LOADERS
from engine.config import RunConfig
from engine.data import ImageSet

Components = list[tuple[str, dict[str, Any]]]
Batch = tuple[torch.Tensor, torch.Tensor]


_SEED_BITS = 2**64  # torch's generators take a 64-bit seed: larger mixes wrap around


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % _SEED_BITS)


def batch_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The generator of one batch's augmentation draws (device path)."""
    mixed = (seed * 1_000_003 + epoch) * 1_000_033 + step
    return torch.Generator().manual_seed(mixed % _SEED_BITS)


@dataclass
class JSDSplit:
    """The augment list cut around the AugMix entry that asked for the JSD loss."""

    before: Components
    augmix: Components
    after: Components
    weight: float


def jsd_split(components: Components) -> JSDSplit | None:
    for i, (name, params) in enumerate(components):
        if name == "augmix" and params.get("jsd"):
            return JSDSplit(
                components[:i], [components[i]], components[i + 1 :], params.get("jsd_weight", 12.0)
            )
    return None


class Loader(Protocol):
    steps: int

    def start(self, epoch: int, step: int = 0) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Batch]: ...


# --------------------------------------------------------------------------- device (fast path)


class ChunkPlan:
    """The batched pipeline of `components`, split into draws and application so that many
    batches are augmented in one pass: `draw(n, h, w, g)` takes one batch's parameters from its
    generator in exactly the order the per-batch pipeline (`DeviceLoader._build`) takes them,
    and `apply(images, params, host, batches)` runs every op once on a chunk of batches whose
    parameters are concatenated. Every op is per-sample, so a chunk gives each image what its own
    batch would have given it; a chunk can start at any step (exact resume mid-chunk)."""

    def __init__(self, components: Components) -> None:
        split = jsd_split(components)
        self.jsd = split is not None
        if split is None:
            self.before, self.augmix, self.after = build_ops(components), [], []
        else:
            self.before, self.after = build_ops(split.before), build_ops(split.after)
            self.augmix = build_ops(split.augmix)

    def views(self) -> int:
        return 3 if self.jsd else 1

    def draw(self, n: int, h: int, w: int, g: torch.Generator) -> list[Params]:
        drawn = [draw_params(op, n, h, w, g) for op in self.before]
        if self.jsd:
            for _ in range(2):  # the second and third views
                drawn += [draw_params(op, n, h, w, g) for op in self.augmix]
            drawn += [draw_params(op, 3 * n, h, w, g) for op in self.after]
        return drawn

    def apply(
        self, images: torch.Tensor, params: list[Params], host: list[Params], batches: int
    ) -> torch.Tensor:
        """`images` [K*B, ...] (K batches), parameters per op concatenated over the batches ->
        [K*V*B, ...]: batch k's V views (view-major within the batch) at rows k*V*B.."""
        ops = [*self.before, *self.augmix, *self.augmix, *self.after]
        pairs = iter(zip(ops, params, host, strict=True))

        def run(x: torch.Tensor, count: int) -> torch.Tensor:
            for _ in range(count):
                op, p, h = next(pairs)
                x = op.apply(x, p, h)
            return x

        clean = run(images, len(self.before))
        if not self.jsd:
            return clean
        second, third = run(clean, len(self.augmix)), run(clean, len(self.augmix))
        per_batch = torch.stack([clean, second, third]).unflatten(1, (batches, -1))
        stacked = per_batch.transpose(0, 1).flatten(0, 2)  # [K, 3, B, ...] -> [K*3*B, ...]
        return run(stacked, len(self.after))


class DeviceLoader:
    """The fast path; `chunk` images (whole batches, at least one) are augmented at once."""

    def __init__(
        self,
        data: ImageSet,
        components: Components,
        batch_size: int,
        steps: int,
        seed: int,
        device: torch.device,
        num_workers: int = 0,  # unused: no worker processes on this path
        rank: int = 0,
        world_size: int = 1,
        chunk: int = 4096,
    ) -> None:
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size, self.steps, self.seed, self.device = batch_size, steps, seed, device
        self.rows = rank_rows(batch_size, rank, world_size)
        self.epoch, self.first_step = 1, 0
        self.plan = ChunkPlan(components)
        self.chunk_steps = max(1, chunk // batch_size)

    @staticmethod
    def _build(components: Components) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
        """The per-batch pipeline the chunks reproduce (the definition of what a batch gets)."""
        split = jsd_split(components)
        if split is None:
            return build_batch_pipeline(components)
        before, augmix, after = (
            build_batch_pipeline(split.before),
            build_batch_pipeline(split.augmix),
            build_batch_pipeline(split.after),
        )

        def views(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            clean = before(images, g)
            return after(torch.cat([clean, augmix(clean, g), augmix(clean, g)]), g)

        return views

    def start(self, epoch: int, step: int = 0) -> None:
        self.epoch, self.first_step = epoch, step

    def __len__(self) -> int:
        return self.steps - self.first_step

    def _chunk(self, order: torch.Tensor, first: int, stop: int) -> torch.Tensor:
        """Steps first..stop-1 augmented at once: [K*V*B, ...]; one upload of all the draws."""
        b, (_, _, h, w) = self.batch_size, self.images.shape
        drawn = [
            self.plan.draw(b, h, w, batch_generator(self.seed, self.epoch, step))
            for step in range(first, stop)
        ]
        host_params = [
            {key: torch.cat([d[i][key] for d in drawn]) for key in drawn[0][i]}
            for i in range(len(drawn[0]))
        ]
        params = upload(host_params, self.device)
        images = self.images[order[first * b : stop * b]]
        return self.plan.apply(images, params, host_params, stop - first)

    def __iter__(self) -> Iterator[Batch]:
        order = torch.randperm(len(self.labels), generator=epoch_generator(self.seed, self.epoch))
        order = upload([{"order": order}], self.device)[0]["order"]
        b, rows = self.batch_size, self.batch_size * self.plan.views()
        for first in range(self.first_step, self.steps, self.chunk_steps):
            stop = min(first + self.chunk_steps, self.steps)
            chunk = self._chunk(order, first, stop)
            for k, step in enumerate(range(first, stop)):
                images = chunk[k * rows : (k + 1) * rows]
                labels = self.labels[order[step * b : (step + 1) * b]]
                if self.rows is not None:  # this rank's rows of each view [V*B, ...] -> [V*b, ...]
                    views = images.unflatten(0, (-1, b))[:, self.rows]
                    images, labels = views.flatten(0, 1), labels[self.rows]
                yield images, labels


# ------------------------------------------------------------------------ torchvision (reference)


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """One epoch's batches of (image index, augmentation seed); the same order as DeviceLoader."""

    def __init__(
        self, n: int, batch_size: int, steps: int, seed: int, rows: slice | None = None
    ) -> None:
        self.n, self.batch_size, self.steps, self.seed = n, batch_size, steps, seed
        self.rows = rows or slice(None)  # this rank's part of each global batch
        self.epoch, self.first_step = 1, 0

    def start(self, epoch: int, step: int = 0) -> None:
        self.epoch, self.first_step = epoch, step

    def __len__(self) -> int:
        return self.steps - self.first_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = epoch_generator(self.seed, self.epoch)
        order = torch.randperm(self.n, generator=g)
        seeds = torch.randint(0, 2**62, (self.n,), generator=g)
        b = self.batch_size
        for step in range(self.first_step, self.steps):
            window = slice(step * b, (step + 1) * b)
            batch = list(zip(order[window].tolist(), seeds[window].tolist(), strict=True))
            yield batch[self.rows]


class AugmentedImages(Dataset[Batch]):
    """uint8 [3, 32, 32] images through `transform`, one at a time, each under its own seed
    (the process's global RNG is saved and restored around it), so the draw is reproducible in
    any worker. With a JSD split, an item is the three views stacked, [3, 3, 32, 32]."""

    def __init__(self, data: ImageSet, components: Components) -> None:
        self.images, self.labels = data.images, data.labels
        self.split = jsd_split(components)
        if self.split is None:
            self.transform = build_pipeline(components)
        else:
            self.before = build_pipeline(self.split.before)
            self.augmix = build_pipeline(self.split.augmix)
            self.after = build_pipeline(self.split.after)

    def __len__(self) -> int:
        return len(self.labels)

    def _views(self, image: torch.Tensor) -> torch.Tensor:
        clean = self.before(image)
        views = [clean, self.augmix(clean), self.augmix(clean)]
        return torch.stack([self.after(v) for v in views])

    def __getitem__(self, key: tuple[int, int]) -> Batch:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            image = self.image_views(self.images[index])
        return image, self.labels[index]

    def image_views(self, image: torch.Tensor) -> torch.Tensor:
        return self.transform(image) if self.split is None else self._views(image)


class TorchvisionLoader:
    def __init__(
        self,
        data: ImageSet,
        components: Components,
        batch_size: int,
        steps: int,
        seed: int,
        device: torch.device,
        num_workers: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.steps, self.device = steps, device
        rows = rank_rows(batch_size, rank, world_size)
        self.batches = EpochBatches(len(data), batch_size, steps, seed, rows)
        self.dataset = AugmentedImages(data, components)
        self.loader = DataLoader(
            self.dataset,
            batch_sampler=self.batches,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=device.type == "cuda",
            # its own generator: each new iterator draws a worker base seed from it, and drawing
            # from the global RNG instead would make a resumed run's dropout masks differ
            generator=torch.Generator().manual_seed(seed),
        )

    def start(self, epoch: int, step: int = 0) -> None:
        self.batches.start(epoch, step)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Batch]:
        for images, labels in self.loader:
            if images.ndim == 5:  # JSD views [B, 3, C, H, W] -> [3B, C, H, W], view-major
                images = images.transpose(0, 1).reshape(-1, *images.shape[2:])
            yield (
                images.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True),
            )


def rank_rows(batch_size: int, rank: int, world_size: int) -> slice | None:
    """The contiguous rows of a global batch that `rank` trains on; None for a single process."""
    if world_size == 1:
        return None
    if batch_size % world_size:
        raise ValueError(f"batch size {batch_size} does not divide by {world_size} processes")
    local = batch_size // world_size
    return slice(rank * local, (rank + 1) * local)


def build_loader(
    cfg: RunConfig,
    data: ImageSet,
    steps: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> Loader:
    """The loader `data.loader` names (see `engine.catalog.loaders`), for `rank` of `world_size`."""
    components = [(a.name, a.params) for a in cfg.augment]
    loader: Loader = LOADERS.get(cfg.data.loader).load()(
        data,
        components,
        cfg.data.batch_size,
        steps,
        cfg.train.seed,
        device,
        num_workers=cfg.data.num_workers,
        rank=rank,
        world_size=world_size,
        **({"chunk": cfg.data.augment_chunk} if cfg.data.loader == "device" else {}),
    )
    return loader


class WaitClock:
    """Measures how long the step loop waits for its next batch: the input-wait fraction.

    On a GPU the device path is asynchronous, so this counts the host time to queue a batch's
    gather and augmentation; on the CPU it is the time the augmentation takes."""

    def __init__(self) -> None:
        self.waited = 0.0

    def timed(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.waited += time.perf_counter() - t0
            yield batch
