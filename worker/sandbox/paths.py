"""Which folders a job process may read and write: the policy `worker.sandbox.landlock` enforces.

A training process needs to READ: the interpreter and its libraries (sys.prefix, the base
installation a venv points at, site-packages), ganforge's own `worker` and `shared` packages
(their source root only listed, never read: a checkout's root may hold a `.env`), the system's
programs and libraries (/usr, /lib*, /bin, /sbin), a short list of /etc files the C library,
DNS, TLS and NCCL read (not all of /etc: an operator's env files for the service may live
there, and the job may share a uid with the worker), /proc and /sys (torch, NCCL's topology
detection), a few devices, and the data roots it may train on (read-only).

It needs to WRITE: its work folder (HOME and TMPDIR point into it), /dev/shm (torch's shared
tensors and NCCL's buffers between ranks) and its devices (/dev/null, the GPUs). Not /tmp:
TMPDIR points into the work folder, and /tmp is shared with every other process on the host.

Everything else is out of reach, in particular $GANFORGE_HOME (the embedded database, the local
artifact store, the broker folder) and the other jobs' work folders beside this one's: a grant
that would contain a protected folder is refused (`ExposedFolderError`).
"""

from __future__ import annotations

import site
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import shared
import worker

# System programs and libraries; a missing one (/lib32) is skipped by the Landlock rules.
SYSTEM_READABLE = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
# The /etc files a training process reads: the dynamic loader, users and groups (getpwuid),
# name resolution (gloo and NCCL resolve host names), time zone, TLS roots (downloads),
# fontconfig (matplotlib), NCCL's own config file.
ETC_READABLE = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ld.so.preload",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "resolv.conf",
    "gai.conf",
    "services",
    "protocols",
    "hostname",
    "localtime",
    "timezone",
    "os-release",
    "mime.types",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "alternatives",
    "fonts",
    "nccl.conf",
)
KERNEL_READABLE = ("/proc", "/sys", "/dev/urandom", "/dev/random")
# Devices and shared memory a job writes to. GPUs (NVIDIA, AMD) and RDMA adapters (NCCL over
# InfiniBand) need read, write and ioctl; a device this node lacks is skipped.
DEVICE_WRITABLE = (
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/shm",
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia-modeset",
    "/dev/nvidia-caps",
    "/dev/kfd",
    "/dev/dri",
    "/dev/infiniband",
)


class ExposedFolderError(ValueError):
    """A folder a job would be granted contains one it must never reach (the service home)."""


@dataclass(frozen=True)
class SourceFolders:
    """Where this process imports ganforge from: `root` (the folder on sys.path that holds the
    packages) and the `packages` a job process imports (`worker`, `shared`)."""

    root: Path
    packages: tuple[Path, ...]

    @property
    def installed(self) -> bool:
        """True when the packages live in site-packages (a regular install): the interpreter
        finds them there by itself, so a job needs no PYTHONPATH and no listing of the root."""
        return self.root in {Path(p).resolve() for p in site.getsitepackages()}


def source_folders() -> SourceFolders:
    """The folders `worker` and `shared` were imported from here: a job imports the same code
    as its worker (a worktree's, under tests, not the editable install's)."""
    packages = tuple(Path(module.__file__ or "").resolve().parent for module in (worker, shared))
    return SourceFolders(root=packages[0].parent, packages=packages)


def interpreter_folders() -> tuple[Path, ...]:
    """The running interpreter's installation: the venv, the installation it was made from,
    site-packages, and the executable itself (a venv's python is a symbolic link)."""
    found = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    found += site.getsitepackages()
    found.append(str(Path(sys.executable).resolve()))
    return tuple(dict.fromkeys(Path(p) for p in found))


@dataclass(frozen=True)
class JobPaths:
    """A job process's grants: read and write beneath `writable`, read and execute beneath
    `readable`, only list beneath `listable`."""

    writable: tuple[Path, ...]
    readable: tuple[Path, ...]
    listable: tuple[Path, ...]


def job_paths(
    work_folder: Path,
    data_roots: Iterable[Path] = (),
    *,
    protected: Iterable[Path] = (),
    extra_readable: Iterable[Path] = (),
) -> JobPaths:
    """The grants of a job process working in `work_folder` that may read `data_roots`.
    `protected` are folders no grant may contain (the service home, the artifact folder):
    ExposedFolderError when one does, say a GANFORGE_HOME inside the source checkout or under
    a data root. `extra_readable`: what an operator adds (a CUDA toolkit under /opt)."""
    source = source_folders()
    readable = [
        *(Path(p) for p in SYSTEM_READABLE),
        *(Path("/etc") / name for name in ETC_READABLE),
        *(Path(p) for p in KERNEL_READABLE),
        *interpreter_folders(),
        *source.packages,
        *data_roots,
        *extra_readable,
    ]
    writable = [work_folder, *(Path(p) for p in DEVICE_WRITABLE), *_gpu_device_files()]
    listable = [] if source.installed else [source.root]
    for folder in protected:
        _refuse_exposure(Path(folder), [*readable, *writable])
    return JobPaths(tuple(writable), tuple(readable), tuple(listable))


def _gpu_device_files() -> list[Path]:
    """/dev/nvidia0, /dev/nvidia1, ...: one file per NVIDIA GPU, none on a node without."""
    return sorted(p for p in Path("/dev").glob("nvidia[0-9]*"))


def _refuse_exposure(folder: Path, grants: list[Path]) -> None:
    resolved = folder.resolve()
    for grant in grants:
        if resolved.is_relative_to(grant.resolve()):
            raise ExposedFolderError(
                f"{folder} lies beneath {grant}, which job processes are allowed to reach: "
                f"move it elsewhere (GANFORGE_HOME must not be inside the source checkout, "
                f"the interpreter's folders, a data root or a system folder)"
            )
