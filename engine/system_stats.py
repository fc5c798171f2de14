"""System numbers for the Monitor's system panel: the engine's CPU share and memory, and on CUDA
the GPU's utilisation, memory and temperature (torch-free).

The engine samples at most once a `period_s` when it emits a step event (or starts a phase) and
writes a `system` event, so `attach` shows what the live view showed. The CPU numbers come from
`/proc/self/stat` and `/proc/self/statm` (no dependency); the GPU numbers from NVML through
`pynvml` (nvidia-ml-py) when it is importable; without it, or on a machine without the file or
the library, those fields stay None and nothing is raised.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from engine.events import EventWriter, SystemSample

PERIOD_S = 1.0  # at most one sample a second: a sample costs two small reads (~50 us)


def _cpu_seconds() -> float | None:
    """User + system CPU time of this process (s), from /proc/self/stat; None off Linux."""
    try:
        with open("/proc/self/stat", "rb") as f:
            text = f.read().decode()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name, in parentheses, may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb() -> float | None:
    """Resident memory of this process (MiB), from /proc/self/statm; None off Linux."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_nvml() -> ModuleType | None:
    """`pynvml`, initialised, or None when it is not installed or finds no driver."""
    try:
        import pynvml  # type: ignore[import-not-found, unused-ignore]

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - absent or no driver: the GPU fields are omitted
        return None
    return pynvml  # type: ignore[no-any-return, unused-ignore]


def gpu_numbers(nvml: Any, index: int) -> dict[str, float | None]:
    """Utilisation (%), memory used and total (MiB) and temperature (C) of GPU `index`; a number
    the driver does not give is None."""
    out: dict[str, float | None] = {
        "gpu_util": None,
        "gpu_mem_mb": None,
        "gpu_mem_total_mb": None,
        "gpu_temp_c": None,
    }
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # noqa: BLE001
        return out
    readers: dict[str, Callable[[], float]] = {
        "gpu_util": lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        "gpu_mem_mb": lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
        "gpu_mem_total_mb": lambda: nvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20,
        "gpu_temp_c": lambda: float(nvml.nvmlDeviceGetTemperature(handle, 0)),  # 0: the GPU die
    }
    for key, read in readers.items():
        with contextlib.suppress(Exception):  # one unsupported query leaves its field empty
            out[key] = read()
    return out


class SystemSampler:
    """`maybe_emit(events)` writes a `system` event when `period_s` has passed since the last.

    `gpu_index`: the CUDA device to read through NVML (None: a CPU run, no GPU fields).
    `nvml`: the NVML module (default: `load_nvml()` on first use; tests pass a fake)."""

    def __init__(
        self,
        gpu_index: int | None,
        period_s: float = PERIOD_S,
        nvml: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gpu_index, self.period_s, self.clock = gpu_index, period_s, clock
        self._nvml = nvml
        self._nvml_loaded = nvml is not None or gpu_index is None
        cpu = _cpu_seconds()  # (clock, cpu seconds) of the last sample: the first is a mean too
        self._last: tuple[float, float] | None = None if cpu is None else (clock(), cpu)
        self._due = -float("inf")

    def sample(self) -> SystemSample:
        now, cpu = self.clock(), _cpu_seconds()
        cpu_pct = None
        if cpu is not None and self._last is not None and now > self._last[0]:
            cpu_pct = 100 * (cpu - self._last[1]) / (now - self._last[0])
        if cpu is not None:
            self._last = (now, cpu)
        sample = SystemSample(cpu_pct=cpu_pct, rss_mb=_rss_mb())
        if self.gpu_index is not None:
            if not self._nvml_loaded:
                self._nvml, self._nvml_loaded = load_nvml(), True
            if self._nvml is not None:
                gpu = gpu_numbers(self._nvml, self.gpu_index)
                sample.gpu_util, sample.gpu_temp_c = gpu["gpu_util"], gpu["gpu_temp_c"]
                sample.gpu_mem_mb, sample.gpu_mem_total_mb = (
                    gpu["gpu_mem_mb"],
                    gpu["gpu_mem_total_mb"],
                )
        return sample

    def maybe_emit(self, events: EventWriter) -> None:
        now = self.clock()
        if now < self._due:
            return
        self._due = now + self.period_s
        events.emit(self.sample())
