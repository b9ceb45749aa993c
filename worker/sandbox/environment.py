"""The environment a job process starts with: an allow-list, never the worker's own.

The worker's environment holds the service's secrets (database URL and password, S3 keys, the
broker's address); a job process runs a researcher's code, which can print, upload or send
anything it can read. So a job gets only what it needs: a fixed PATH and locale, HOME, TMPDIR
and the caches inside its work folder, the import path of ganforge's own packages, a few
operator knobs passed through from the worker (device pinning, NCCL and gloo interfaces, thread
counts), and what the caller adds in `extra`. A name in `extra` that looks like a secret is a
programming error and raises: a secret must never reach a job by accident of naming.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from worker.sandbox.paths import source_folders

log = logging.getLogger(__name__)

# The system's programs only; the interpreter's own folder (the venv's bin) goes first.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOCALE = "C.UTF-8"

# Folders inside the work folder that the variables below point at; the work folder's owner
# creates them (worker.sandbox.account.prepare_work_folder): TMPDIR must exist, or Python's
# tempfile falls back to /tmp, which the job cannot write.
TMP_SUBFOLDER = "tmp"
CACHE_SUBFOLDER = ".cache"
JOB_SUBFOLDERS = (TMP_SUBFOLDER, CACHE_SUBFOLDER)

# Copied from the worker's environment when set there: which devices the job sees, which
# network interfaces its collectives use, how many threads its libraries start. Set by the
# operator (or by the worker itself), never by the job's owner.
PASSTHROUGH_NAMES = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        "CUDA_MODULE_LOADING",
        "CUDA_HOME",
        "NVIDIA_VISIBLE_DEVICES",
        "NVIDIA_DRIVER_CAPABILITIES",
        "HIP_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "LD_LIBRARY_PATH",
        "GLOO_SOCKET_IFNAME",
        "TP_SOCKET_IFNAME",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "TORCH_DISTRIBUTED_DEBUG",
        "TZ",
    }
)
# NCCL's and torch's NCCL knobs (NCCL_SOCKET_IFNAME, NCCL_IB_HCA, ...) and libfabric's (EFA).
PASSTHROUGH_PREFIXES = ("NCCL_", "TORCH_NCCL_", "FI_")

# Names the passthrough copies although the deny pattern matches them: NCCL's InfiniBand
# partition key is a network setting, not a secret.
NOT_SECRETS = frozenset({"NCCL_IB_PKEY"})
# Names that hold, or lead to, the service's secrets (matched anywhere, any case): the database,
# the broker (the worker's control channel), cloud keys, anything called a secret, token,
# password or key.
DENIED_NAME = re.compile(
    r"^GANFORGE_DATABASE|^GANFORGE_BROKER|^AWS_|SECRET|TOKEN|PASSWORD|PASSWD|KEY|CREDENTIAL",
    re.IGNORECASE,
)


class SecretInEnvironmentError(ValueError):
    """A job's environment was asked to carry a variable that may hold a secret."""


def is_denied(name: str, value: str) -> bool:
    """True for a variable a job must never see: its name is on the deny pattern, or it is a
    URL (any *_URL, or a value that parses as one) carrying a user name or password."""
    if name in NOT_SECRETS:
        return _has_credentials(value)
    return bool(DENIED_NAME.search(name)) or _has_credentials(value)


def job_environment(
    extra: Mapping[str, str],
    work_folder: Path,
    *,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of a job process working in `work_folder`: the fixed variables,
    the passthrough ones found in `source` (default: this process's environment) and `extra`
    (the caller's: its channel address, thread counts). SecretInEnvironmentError when `extra`
    names a secret or overrides a fixed variable; a passthrough variable that looks like a
    secret is dropped."""
    fixed = _fixed_variables(work_folder)
    for name, value in extra.items():
        if is_denied(name, value):
            raise SecretInEnvironmentError(
                f"{name} may hold a secret and must not reach a job process"
            )
        if name in fixed or name == "PYTHONPATH":
            raise SecretInEnvironmentError(f"{name} is set by the sandbox, not by the caller")
    passed = {}
    for name, value in (os.environ if source is None else source).items():
        if name in PASSTHROUGH_NAMES or name.startswith(PASSTHROUGH_PREFIXES):
            if is_denied(name, value):
                log.warning("sandbox: %s looks like a secret; not passed to job processes", name)
            else:
                passed[name] = value
    return {**passed, **fixed, **extra}


def _fixed_variables(work_folder: Path) -> dict[str, str]:
    cache = work_folder / CACHE_SUBFOLDER
    fixed = {
        "PATH": f"{Path(sys.executable).parent}:{SAFE_PATH}",
        "LANG": LOCALE,
        "LC_ALL": LOCALE,
        "HOME": str(work_folder),
        "TMPDIR": str(work_folder / TMP_SUBFOLDER),
        "XDG_CACHE_HOME": str(cache),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "TORCH_HOME": str(cache / "torch"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    source = source_folders()
    if not source.installed:
        # A source checkout (editable install, or a worktree under tests): its root on the
        # path makes the job import the very code its worker runs.
        fixed["PYTHONPATH"] = str(source.root)
    return fixed


def _has_credentials(value: str) -> bool:
    if "://" not in value:
        return False
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return bool(parts.username or parts.password)
