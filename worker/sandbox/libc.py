"""The two libc entry points the sandbox needs and Python's os module lacks: `prctl` and raw
`syscall` (Landlock has no libc wrapper), through ctypes, with errno turned into OSError."""

from __future__ import annotations

import ctypes
import os
from functools import cache

# prctl(2) options (linux/prctl.h).
PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39


@cache
def _libc() -> ctypes.CDLL:
    # The C library the interpreter is linked with: its symbols are in the process already.
    return ctypes.CDLL(None, use_errno=True)


def _checked(result: int, what: str) -> int:
    if result == -1:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")
    return result


def prctl(option: int, arg2: int = 0) -> int:
    """prctl(option, arg2, 0, 0, 0); the unused arguments must be zero for the options here."""
    function = _libc().prctl
    function.restype = ctypes.c_int
    zero = ctypes.c_ulong(0)
    return _checked(function(option, ctypes.c_ulong(arg2), zero, zero, zero), f"prctl({option})")


def syscall(number: int, *args: int | ctypes.c_void_p | None) -> int:
    """syscall(number, *args): each argument an integer (passed as a C long) or a pointer."""
    function = _libc().syscall
    function.restype = ctypes.c_long
    converted = [ctypes.c_long(arg) if isinstance(arg, int) else arg for arg in args]
    return _checked(function(ctypes.c_long(number), *converted), f"syscall({number})")
