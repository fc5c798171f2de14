"""Training-data loaders (`data.loader`): the device-resident fast path, or torchvision's."""

from __future__ import annotations

from engine.catalog.spec import Catalog, Spec

LOADERS = Catalog(
    "loader",
    [
        Spec(
            "device",
            "the dataset on the training device as uint8, batches augmented there in chunks",
            "engine.loader:DeviceLoader",
        ),
        Spec(
            "torchvision",
            "torch DataLoader workers applying the per-image transforms (the reference path)",
            "engine.loader:TorchvisionLoader",
        ),
    ],
)
