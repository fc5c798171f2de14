"""The preview engine: draws answered over a pipe from data decoded once; a failed draw leaves
no folder it created behind."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from engine import build, cifar100, preview
from engine.config import dump_config, load_config, parse_config
from engine.errors import DataError

TINY = ["data.dataset=synthetic", "data.subset=200", "data.val_size=100"]


def test_serve_answers_each_draw_and_decodes_the_data_once(tmp_path, monkeypatch) -> None:
    loads: list[str] = []
    real = build.load_run_data

    def counted(cfg, **kwargs):  # noqa: ANN001, ANN202
        loads.append(cfg.data.dataset)
        return real(cfg, **kwargs)

    monkeypatch.setattr(build, "load_run_data", counted)
    monkeypatch.setattr(preview, "_CACHE", {})
    config = dump_config(load_config("quickstart", TINY))
    requests = "".join(
        json.dumps({"config": config, "out": str(tmp_path / f"{s}.npz"), "count": 3, "seed": s})
        + "\n"
        for s in range(2)
    )
    requests += json.dumps({"config": "model: {name: wrn, depth: 12}", "out": "x"}) + "\n"
    replies = io.StringIO()
    assert preview.serve(io.StringIO(requests), replies) == 0
    answers = [json.loads(line) for line in replies.getvalue().splitlines()]
    done = [a["done"] for a in answers if "done" in a]
    assert done == [str(tmp_path / "0.npz"), str(tmp_path / "1.npz")]
    assert loads == ["synthetic"]  # the second draw reused the decoded set
    assert answers[-1]["error"].startswith("model.depth = 12 is not a WRN depth")
    assert any("progress" in a for a in answers)
    with np.load(tmp_path / "1.npz") as z:
        assert z["original"].shape == (3, 3, 32, 32) and z["augmented"].dtype == np.uint8


def test_a_failed_draw_leaves_no_empty_data_folder(tmp_path, monkeypatch) -> None:
    def offline(data_dir: Path, *, progress: bool) -> Path:
        Path(data_dir).mkdir(parents=True, exist_ok=True)  # as the real download does first
        raise DataError("could not download CIFAR-100 (offline)")

    monkeypatch.setattr(cifar100, "download_cifar100", offline)
    fresh = tmp_path / "fresh" / "data"
    cfg = parse_config({"data": {"dataset": "cifar100", "data_dir": str(fresh)}})
    with pytest.raises(DataError, match="offline"):
        preview.make_preview(cfg, tmp_path / "out.npz", count=2)
    assert not (tmp_path / "fresh").exists() and tmp_path.is_dir()
