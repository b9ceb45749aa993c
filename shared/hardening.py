"""Keep a service process's secrets from processes of the same uid (a job's, where the worker
cannot run jobs as another account): a non-dumpable process's /proc/<pid>/environ, mem and fds
are root's, and it can be neither traced nor dumped. The worker, the API and the scheduler
call `harden_service_process()` at start (an execve undoes it, so each process does it).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4


def harden_service_process() -> bool:
    """PR_SET_DUMPABLE 0 for this process; False, logged, where that cannot be done."""
    if not sys.platform.startswith("linux"):
        log.info("not on Linux; this process stays dumpable")
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.warning("could not make this process non-dumpable: %s", os.strerror(ctypes.get_errno()))
        return False
    return True
