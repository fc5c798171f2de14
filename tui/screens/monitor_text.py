"""The Monitor's status-box lines that follow the latest events: the live in-epoch numbers and
the system panel (plain Rich text, no widgets)."""

from __future__ import annotations

from rich.text import Text

from engine.events import SystemSample
from engine.outcome import RunStatus
from tui.fmt import memory_text, pct
from tui.orchestration.runstate import RunState


def live_text(s: RunState) -> Text | None:
    """'now e3 41/97: loss 3.112 · top-1 24.50% · lr 0.0812' from the latest step event, while
    the run is inside an epoch (None otherwise); its img/s is on the info line above."""
    e = s.last_step
    done = s.last_epoch.epoch if s.last_epoch else 0
    if e is None or e.epoch <= done or s.status is not RunStatus.RUNNING:
        return None
    return Text.assemble(
        (f"now e{e.epoch} {e.epoch_step}/{e.steps_per_epoch}: ", "bold"),
        f"loss {e.loss:.3f} · top-1 {pct(e.top1)} · lr {e.lr:.3g}\n",
    )


def system_text(sample: SystemSample | None) -> str:
    """'cpu 187% · rss 2.1 GiB · gpu 97% · 30.1/80.0 GiB · 64°C', the parts that were read;
    '' without a sample (an older log, or none yet)."""
    if sample is None:
        return ""
    parts = []
    if sample.cpu_pct is not None:
        parts.append(f"cpu {sample.cpu_pct:.0f}%")
    if sample.rss_mb is not None:
        parts.append(f"rss {memory_text(sample.rss_mb)}")
    if sample.gpu_util is not None:
        parts.append(f"gpu {sample.gpu_util:.0f}%")
    if sample.gpu_mem_mb is not None:
        total = sample.gpu_mem_total_mb
        used = memory_text(sample.gpu_mem_mb)
        parts.append(f"gpu mem {used}" + (f" / {memory_text(total)}" if total else ""))
    if sample.gpu_temp_c is not None:
        parts.append(f"{sample.gpu_temp_c:.0f}°C")
    return " · ".join(parts)
