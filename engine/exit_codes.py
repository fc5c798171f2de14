"""The exit codes of every cifar-tui process (the engine, `--run`, `sweep`, `eval`, `lr-find`):
one table, the README's (a test compares them)."""

from __future__ import annotations

import signal

OK = 0  # done, or stopped on request (stop after this epoch)
ERROR = 1  # anything unexpected: a traceback saved in the run folder, one line on stderr
BAD_INPUT = 2  # usage, config, data, a refused checkpoint, a batch too large for the device
DIVERGED = 3  # non-finite losses `train.max_bad_steps` times in a row
NO_SUGGESTION = 3  # `lr-find`: the curve gave no learning rate to suggest
SIGNAL_BASE = 128  # 128 + N after signal N: 130 SIGINT (Ctrl-C), 143 SIGTERM


def after_signal(signum: int) -> int:
    """The exit code after signal `signum` (the shell's convention)."""
    return SIGNAL_BASE + int(signum)


INTERRUPTED = after_signal(signal.SIGINT)  # 130
TERMINATED = after_signal(signal.SIGTERM)  # 143

# code -> meaning, as the README's table says it
TABLE = {
    OK: "done (or stopped after an epoch on request)",
    ERROR: "anything unexpected",
    BAD_INPUT: "bad input",
    DIVERGED: "diverged (`lr-find`: no suggestion)",
    INTERRUPTED: "interrupted by SIGINT (Ctrl-C)",
    TERMINATED: "interrupted by SIGTERM",
}
