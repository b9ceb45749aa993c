"""What the agent hands a job's processes at their start: the job and the few settings they
need, in place of the worker's whole configuration (which holds its credentials)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JobTicket:
    job_id: str
    attempt: int
    kind: str
    spec: dict[str, Any]
    # Ranks of the job in all (a training job's devices; 1 for the other kinds).
    world_size: int
    # GANFORGE_TORCH_THREADS (0: the node's cores shared among its ranks).
    torch_threads: int = 0
    # Seconds between progress writes, and between live uploads of log.txt.
    progress_interval_s: float = 2.0
    log_flush_s: float = 2.0
    # Where a spec's data.path may point on this node.
    data_roots: tuple[str, ...] = field(default_factory=tuple)
    # The attempt's folder the job's processes write in, and the agent's read-only one.
    work_folder: str = ""
    inputs_folder: str = ""
    stop_file: str = ""
    # The researchers' code bundles the job runs, by id: their unpacked, read-only folders.
    bundles: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobTicket:
        return cls(**{**data, "data_roots": tuple(data.get("data_roots", ()))})

    @property
    def roots(self) -> list[Path]:
        return [Path(root) for root in self.data_roots]
