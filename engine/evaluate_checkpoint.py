"""`python -m engine eval CHECKPOINT [--tta [VIEW ...]] --out JSON`: a checkpoint on the test set.

The model is rebuilt from the config stored inside the checkpoint and given its EMA weights when
the run kept them (what the trainer evaluates). The test set comes from the stored dataset and is
normalised exactly as that run did it: the same split, subset and seed give the same training
mean/std (engine.device.Normalizer). Without views this is a plain evaluation (the `identity`
view alone, cost 1); `--tta` with no names uses engine.tta.DEFAULT_VIEWS.

Torch is imported when `evaluate_checkpoint` runs, not at import.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine import exit_codes, strict_json
from engine.checkpoint_files import CheckpointError
from engine.config import check_device, fast_options
from engine.errors import BadInputError, ConfigError
from engine.tta_views import DEFAULT_VIEWS, unique_views

EXIT_OK, EXIT_BAD_INPUT = exit_codes.OK, exit_codes.BAD_INPUT

COMPILED_PREFIX = "_orig_mod."  # what torch.compile puts before a wrapped module's keys


def evaluate_checkpoint(
    path: Path,
    views: Sequence[str] = ("identity",),
    *,
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool = True,
    eval_file: Path | None = None,
) -> dict[str, Any]:
    """Evaluate `path` on its run's test set through `views`; returns a JSON-ready report.
    `eval_file`: also write the plain (identity view) evaluation there as the trainer's test
    pass does (`engine.evaluation.write_eval_file`: confusion matrix, per-class curves).

    Raises CheckpointError (missing, damaged, not ours, weights that do not fit the stored
    model) and BadInputError (bad view names, device, batch size, data) with one-line messages.
    """
    t0 = time.time()
    views = list(views) or ["identity"]
    unique_views(views)
    check_device(device)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size = {batch_size} is out of range [1, inf]")

    from engine import build, checkpoint
    from engine import device as devices
    from engine.config import parse_config
    from engine.tta import evaluate_tta

    try:
        dev = devices.resolve_device(device)
    except ConfigError as exc:
        raise ConfigError(f"--device {device}: {exc}") from None
    state = checkpoint.load(Path(path), map_location="cpu")
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"checkpoint {path} holds no run config to rebuild the model from")
    try:
        cfg = parse_config(state["config"])
    except ConfigError as exc:
        raise ConfigError(
            f"checkpoint {path}: its stored config is not valid here: {exc}"
        ) from None
    data = build.load_run_data(cfg, data_dir=data_dir, progress=progress)
    amp, channels_last = fast_options(cfg.train, dev.type)
    model = build.build_model(cfg, len(data.class_names))
    use_ema = state.get("ema") is not None
    weights = state["ema"] if use_ema else state["model"]
    weights = {k.removeprefix(COMPILED_PREFIX): v for k, v in weights.items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"checkpoint {path}: its weights do not fit {cfg.model.name}: {first}"
        ) from None
    devices.to_device(model, dev, channels_last)
    normalize = devices.Normalizer.of(data, dev, channels_last, amp)
    size = batch_size or cfg.eval.batch_size
    calibration: dict[str, Any] = {}
    if views == ["identity"]:  # one pass serves the scores, the ECE and the eval file
        from engine import metrics
        from engine.calibration import expected_calibration_error
        from engine.tta import TTAResult, ViewScore

        logits = _logits(model, data.test, normalize, dev, size, amp)
        if eval_file is not None:
            from engine.evaluation import write_eval_file

            write_eval_file(eval_file, logits, data)
        probs = _probabilities(logits)
        calibration["ece"] = expected_calibration_error(probs, data.test.labels.numpy())
        n = len(data.test)
        c1, c5 = (int(c) / n for c in metrics.topk_correct(logits, data.test.labels, (1, 5)))
        result = TTAResult([ViewScore("identity", c1, c5)], c1, c5, n, 1, 1)
    else:
        result = evaluate_tta(
            model,
            data.test,
            views,
            normalize=normalize,
            device=dev,
            batch_size=size,
            amp=amp,
        )
        if eval_file is not None:
            from engine.evaluation import write_eval_file

            logits = _logits(model, data.test, normalize, dev, size, amp)
            write_eval_file(eval_file, logits, data)
    loop = state.get("loop") or {}
    return {
        "checkpoint": str(path),
        "run_id": state.get("run_id"),
        "epoch": loop.get("epoch"),
        "dataset": data.name,
        "synthetic": data.synthetic,
        "model": cfg.model.name,
        "device": str(dev),
        "weights": "ema" if use_ema else "model",
        "batch_size": size,
        **result.to_dict(),
        **calibration,
        "wall_s": time.time() - t0,
    }


def _probabilities(logits: Any) -> Any:
    """Class probabilities (numpy float32 [N, C]) of float32 logits [N, C]."""
    import torch

    return torch.softmax(logits, dim=1).numpy()


def _logits(model: Any, test: Any, normalize: Any, dev: Any, size: int, amp: bool) -> Any:
    """float32 [N, C] logits of `model` on the test images, in order, on the CPU."""
    import torch

    from engine.device import autocast

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(test), size):
            images = test.images[start : start + size].to(dev)
            with autocast(dev, amp):
                out.append(model(normalize(images)).float().cpu())
    return torch.cat(out)


def main(args: argparse.Namespace) -> int:
    """The `eval` subcommand: 0 with the report written to `args.out`, 2 on bad input."""
    views = ["identity"] if args.tta is None else (args.tta or list(DEFAULT_VIEWS))
    try:
        report = evaluate_checkpoint(
            args.checkpoint,
            views,
            data_dir=args.data_dir,
            device=args.device,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            eval_file=args.eval_file,
        )
    except (BadInputError, CheckpointError) as exc:
        print(f"cifar-tui: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if type(exc).__name__ != "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
            raise
        size = args.batch_size or "eval.batch_size"
        print(
            f"cifar-tui: error: CUDA out of memory evaluating with batch size {size}; "
            "try a smaller --batch-size",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    args.out.write_text(strict_json.dumps(report, indent=2) + "\n")
    return EXIT_OK
