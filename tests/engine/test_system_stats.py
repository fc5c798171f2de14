"""The engine's system samples: CPU share and memory from /proc, the GPU through NVML (a fake
module here, so the NVML path runs on a CPU machine), at most one event a period."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine.events import EVENTS_FILE, EventWriter, SystemSample, read_events
from engine.system_stats import SystemSampler


class FakeNVML:
    """What `pynvml` answers for one GPU: 71% busy, 3 of 8 GiB used, 58 C."""

    def __init__(self, *, fail_temperature: bool = False) -> None:
        self.fail_temperature = fail_temperature
        self.indices: list[int] = []

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:  # noqa: N802 - NVML's names
        self.indices.append(index)
        return f"gpu{index}"

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> Any:  # noqa: N802
        return SimpleNamespace(gpu=71, memory=20)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> Any:  # noqa: N802
        return SimpleNamespace(used=3 * 2**30, total=8 * 2**30, free=5 * 2**30)

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:  # noqa: N802
        if self.fail_temperature:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return 58


def test_a_cpu_run_samples_cpu_share_and_resident_memory_and_no_gpu() -> None:
    clock = iter([0.0, 1.0])
    sample = SystemSampler(None, clock=lambda: next(clock)).sample()
    assert sample.rss_mb is not None and sample.rss_mb > 10  # this Python process
    assert sample.cpu_pct is not None and sample.cpu_pct >= 0
    assert (sample.gpu_util, sample.gpu_mem_mb, sample.gpu_temp_c) == (None, None, None)


def test_the_gpu_numbers_come_from_nvml_for_the_run_device() -> None:
    nvml = FakeNVML()
    sample = SystemSampler(1, nvml=nvml).sample()
    assert nvml.indices == [1]
    assert sample.gpu_util == 71.0 and sample.gpu_temp_c == 58.0
    assert sample.gpu_mem_mb == 3 * 1024 and sample.gpu_mem_total_mb == 8 * 1024


def test_an_nvml_query_the_driver_refuses_leaves_only_its_field_empty() -> None:
    sample = SystemSampler(0, nvml=FakeNVML(fail_temperature=True)).sample()
    assert sample.gpu_temp_c is None and sample.gpu_util == 71.0


def test_without_pynvml_a_cuda_run_omits_the_gpu_fields(monkeypatch: Any) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)  # import raises ImportError
    sample = SystemSampler(0).sample()
    assert sample.gpu_util is None and sample.rss_mb is not None


def test_at_most_one_event_a_period_and_it_reads_back(tmp_path: Path) -> None:
    now = [100.0]
    sampler = SystemSampler(0, period_s=1.0, nvml=FakeNVML(), clock=lambda: now[0])
    writer = EventWriter(tmp_path / EVENTS_FILE)
    for t in (100.0, 100.4, 100.9, 101.0, 101.5):
        now[0] = t
        sampler.maybe_emit(writer)
    writer.close()
    events = read_events(tmp_path / EVENTS_FILE)
    assert len(events) == 2 and all(isinstance(e, SystemSample) for e in events)
    assert isinstance(events[0], SystemSample) and events[0].gpu_util == 71.0
