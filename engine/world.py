"""Who this process is under torchrun (rank, world size, restarts), from the environment alone:
torch-free, so the engine process knows before it imports torch (it takes the run lock first)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    restart: int = 0  # TORCHELASTIC_RESTART_COUNT: 0 on the first attempt
    max_restarts: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def final_attempt(self) -> bool:
        """No restart follows a failure of this attempt (always true outside torchrun)."""
        return self.restart >= self.max_restarts


def world() -> World:
    """This process's place, from the environment torchrun sets (single process without it)."""
    env = os.environ
    return World(
        rank=int(env.get("RANK", 0)),
        size=int(env.get("WORLD_SIZE", 1)),
        local_rank=int(env.get("LOCAL_RANK", 0)),
        restart=int(env.get("TORCHELASTIC_RESTART_COUNT", 0)),
        max_restarts=int(env.get("TORCHELASTIC_MAX_RESTARTS", 0)),
    )


def launcher_pid() -> int:
    """The pid a UI signals to stop the run: torchrun's agent when under it, else this process.

    torchrun forwards SIGINT/SIGTERM to every worker; signalling one rank would stop only the
    ranks that take part in its next collective."""
    return os.getppid() if "TORCHELASTIC_RUN_ID" in os.environ else os.getpid()
