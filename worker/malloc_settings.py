"""glibc malloc settings for the worker's main process, so memory its short-lived threads
free goes back to the system instead of staying resident.

Each attempt's agent serves the job's processes from threads of its own (worker/agent/server.py),
a few a job, which end with it. glibc gives threads arenas of their own (up to 8 per core),
each a heap of its own mapping; a thread's requests (payloads, S3 uploads, queries) allocate
there, and when it ends the memory is free but stays resident: glibc returns a thread heap's
free top only past the trim threshold, and raises that threshold (to twice the largest block
ever freed from a mapping of its own, up to 64 MiB) as the process runs; malloc_trim() leaves
those tops alone. In the soak (tests/soak; README, "Soak") 90-93% of the main process's growth
lay in these heaps, 78-79% of whose bytes were free. The fixed thresholds below are glibc's
own defaults, held where they start: blocks of 128 KiB or more get mappings of their own,
unmapped when freed, and a heap's free top past 128 KiB is given back.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

# mallopt() parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's defaults; setting either one stops glibc from raising both as the process runs.
TRIM_THRESHOLD_BYTES = 128 * 1024
MMAP_THRESHOLD_BYTES = 128 * 1024


def return_freed_memory() -> bool:
    """Fix glibc's trim and mmap thresholds for this process; False, logged, where this is
    not glibc (another libc, another system) or it refused them."""
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:  # musl has no mallopt
        log.info("no mallopt in this libc; malloc keeps its own thresholds")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    accepted = [
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
    ]
    if accepted != [1, 1]:
        log.warning("mallopt refused the trim and mmap thresholds: %s", accepted)
        return False
    return True
