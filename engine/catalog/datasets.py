"""Datasets (`data.dataset`): each implementation returns the raw train and test sets and the
class names (fine, coarse, fine -> coarse)."""

from __future__ import annotations

from engine.catalog.spec import Catalog, Spec

DATASETS = Catalog(
    "dataset",
    [
        Spec(
            "cifar100",
            "CIFAR-100: 50,000 training and 10,000 test images, 100 classes in 20 superclasses",
            "engine.cifar100:read_cifar100_source",
            train_images=50_000,
        ),
        Spec(
            "synthetic",
            "a small generated dataset, the same every time: for tests and smoke runs",
            "engine.data:read_synthetic_source",
            train_images=10_000,  # engine.data.make_synthetic's n_train
        ),
    ],
)
