"""`python -m engine.about`: the versions and the device, as one JSON line. `cifar-tui --version`
asks this process (the UI never imports torch)."""

from __future__ import annotations

import json
import os
import platform
from typing import Any


def about() -> dict[str, Any]:
    import torch
    import torchvision

    cuda = torch.cuda.is_available()
    if cuda:
        device = f"cuda: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    else:
        device = f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda_build": torch.version.cuda,  # None: a CPU-only build of torch
        "cuda_available": cuda,
        "device": device,
    }


if __name__ == "__main__":
    print(json.dumps(about()))
