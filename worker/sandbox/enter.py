"""`python -m worker.sandbox.enter --plan JSON -- COMMAND...`: run COMMAND inside a sandbox.

The worker starts this shim (subprocess.Popen, no preexec_fn) instead of the job's command,
through `SandboxPlan.command`, which runs `main` in an isolated interpreter (`python -I`): as
root, the shim must not import anything from its working folder or PYTHONPATH.
Being a fresh process with one thread, it may do what a fork of the threaded worker may not:
close every descriptor it inherited but 0, 1, 2 and the plan's `keep_fds`, apply the plan
(`SandboxPlan.apply`: rlimits, no_new_privs, Landlock, the drop to the job account), then
execvp COMMAND, which replaces it under the same pid (the supervisor's process group leader
stays its process). It exits 126 when the sandbox cannot be applied and 127 when COMMAND
cannot be started, as a shell does, with the reason on stderr (the job's output).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from worker.sandbox import SandboxPlan
from worker.sandbox.account import first_closed_folder

EXIT_SANDBOX_FAILED = 126
EXIT_COMMAND_FAILED = 127


def close_inherited_fds(keep: Iterable[int]) -> None:
    """Close every descriptor of this process but 0, 1, 2 and `keep`: whatever the worker
    leaked into its child (a database socket, a log file) must not reach the job."""
    kept = {0, 1, 2, *keep}
    try:
        # The listing's own descriptor is in the list and already closed when we get to it.
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, os.sysconf("SC_OPEN_MAX")))
    for fd in open_fds:
        if fd not in kept:
            with contextlib.suppress(OSError):
                os.close(fd)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--" not in args:
        print("usage: python -m worker.sandbox.enter --plan JSON -- COMMAND...", file=sys.stderr)
        return 2
    split = args.index("--")
    parser = argparse.ArgumentParser(prog="python -m worker.sandbox.enter")
    parser.add_argument("--plan", required=True, help="a SandboxPlan as JSON")
    options = parser.parse_args(args[:split])
    command = args[split + 1 :]
    if not command:
        parser.error("no command after --")
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        plan = SandboxPlan.from_json(options.plan)
        close_inherited_fds(plan.keep_fds)
        plan.apply()
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"sandbox: could not sandbox {command[0]}: {error}", file=sys.stderr)
        return EXIT_SANDBOX_FAILED
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(
            f"sandbox: could not start {command[0]}: {error}{_hint(plan, command[0])}",
            file=sys.stderr,
        )
        return EXIT_COMMAND_FAILED


def _hint(plan: SandboxPlan, program: str) -> str:
    """Why the job account may not reach `program`: a folder above it it may not search (a
    Python installed under root's home), which is where an operator must look."""
    if plan.account is None or not os.path.isabs(program):
        return ""
    try:
        closed = first_closed_folder(Path(os.path.realpath(program)), plan.account)
    except OSError:
        return ""
    if closed is None:
        return ""
    return f" ({plan.account.name} may not search {closed}: put the program where it can)"


if __name__ == "__main__":
    sys.exit(main())
