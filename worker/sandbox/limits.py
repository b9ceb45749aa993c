"""Resource limits (setrlimit) of one attempt's processes, applied by the shim before the exec.

Soft and hard limits are set alike, so the job cannot raise them again. They bound what one
runaway job does to its node (descriptor leaks, fork loops, core files), not its memory or GPU
use: a cgroup (the container an operator runs jobs in) bounds those.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

# Descriptors per process: 16 times the usual soft default of 1,024. DataLoader workers pass
# shared tensors as descriptors and NCCL opens some per peer and adapter; a few thousand is
# the most seen, while a leak stops here instead of at the node's file table.
DEFAULT_OPEN_FILES = 16_384
# Processes and threads of the job's real uid, summed over everything that uid runs on the
# node (Linux counts RLIMIT_NPROC per real user, and root is exempt): it means something only
# after the drop to the job account, and it covers every job on the node at once. A rank runs
# about 200 threads (torch's intra-op pool, DataLoader workers and theirs, NCCL, CUDA), so an
# 8-GPU node's ranks need ~2,000; 16,384 leaves room for several jobs and stops a fork bomb
# far below the kernel's threads-max (hundreds of thousands on a GPU node).
DEFAULT_PROCESSES = 16_384


@dataclass(frozen=True)
class AttemptLimits:
    """Per-process limits for one attempt; None leaves a limit as inherited.

    `core_bytes` 0: no core files (a rank's core holds its memory, GPU mappings aside, and can
    fill a disk). `address_space_bytes` (RLIMIT_AS) stays None on GPU nodes: CUDA reserves
    terabytes of virtual address space up front and fails under any realistic bound; a cgroup's
    memory.max bounds resident memory instead. `file_bytes` (RLIMIT_FSIZE) bounds any one file
    a job writes (checkpoints are gigabytes; a quota on the work root is the better tool).
    """

    open_files: int | None = DEFAULT_OPEN_FILES
    processes: int | None = DEFAULT_PROCESSES
    core_bytes: int | None = 0
    address_space_bytes: int | None = None
    file_bytes: int | None = None

    def __post_init__(self) -> None:
        for name, value in self.to_dict().items():
            if value is not None and value < 0:
                raise ValueError(f"AttemptLimits.{name} must be None or at least 0, got {value}")

    def to_dict(self) -> dict[str, int | None]:
        return asdict(self)

    def apply(self) -> None:
        """Set each limit (soft = hard) in this process, for it and all it starts. Without the
        privilege to raise a hard limit (a worker that is not root), a limit above the current
        hard one is lowered to it, with a warning."""
        for name, which in (
            ("open_files", resource.RLIMIT_NOFILE),
            ("processes", resource.RLIMIT_NPROC),
            ("core_bytes", resource.RLIMIT_CORE),
            ("address_space_bytes", resource.RLIMIT_AS),
            ("file_bytes", resource.RLIMIT_FSIZE),
        ):
            wanted = getattr(self, name)
            if wanted is not None:
                _set_limit(name, which, wanted)


def _set_limit(name: str, which: int, wanted: int) -> None:
    try:
        resource.setrlimit(which, (wanted, wanted))
    except ValueError:
        # Raising a hard limit needs CAP_SYS_RESOURCE: settle for the hard limit we have.
        _, hard = resource.getrlimit(which)
        log.warning(
            "sandbox: %s limit %d is above the hard limit %d; using %d", name, wanted, hard, hard
        )
        resource.setrlimit(which, (hard, hard))
