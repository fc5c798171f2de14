#!/usr/bin/env bash
# The wheel works outside the checkout: built from the repo, installed (not editable) into a
# scratch environment that reuses the checkout's torch, then used from an empty folder.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/src"  # built from a copy of the tracked files: the checkout gets no build/
git ls-files -z | xargs -0 cp --parents -t "$scratch/src"
.venv/bin/pip wheel --quiet --no-deps --no-build-isolation "$scratch/src" -w "$scratch/dist"
python3.11 -m venv "$scratch/venv"
# The dependencies (torch, textual, ...) are the checkout's .venv, seen through a .pth line; the
# .pth files inside it (the editable install's among them) are not processed, so `engine` and
# `tui` can only come from the wheel.
purelib='import sysconfig; print(sysconfig.get_paths()["purelib"])'
.venv/bin/python -c "$purelib" > "$("$scratch/venv/bin/python" -c "$purelib")/checkout-deps.pth"
"$scratch/venv/bin/pip" install --quiet --no-deps --no-index "$scratch"/dist/cifar_tui-*.whl
mkdir "$scratch/empty" "$scratch/home"
cd "$scratch/empty"
export HOME="$scratch/home" CIFAR_TUI_CHECKPOINTS="$scratch/checkpoints" NO_COLOR=1
unset PYTHONPATH CIFAR_TUI_PRESETS CIFAR_TUI_SWEEPS
bin="$scratch/venv/bin"
"$bin/python" - "$scratch" <<'PY'
import sys, engine, tui
for package in (engine, tui):
    assert package.__file__.startswith(sys.argv[1]), f"{package.__name__} from {package.__file__}"
PY
set -x
"$bin/cifar-tui" --version
"$bin/cifar-tui" presets | grep -E "bundled +│ (quickstart|resnet18) "
"$bin/cifar-tui" --run quickstart --set train.epochs=1 --json > summary.json
"$bin/python" -c 'import json; s = json.load(open("summary.json")); assert s["status"] == "done", s'
"$bin/cifar-tui" sweep tiny --dry-run
"$bin/cifar-tui" runs
test -z "$(ls -A "$scratch/empty" | grep -v '^summary.json$')"  # nothing written in the cwd
