"""`python -m worker.forkserver.server --listen-fd N --worker-pid P`: the node's fork server.

Started by the worker's keeper (keeper.py) through the sandbox shim, as a job process is: the
job account, an allow-listed environment with no credentials, rlimits and a Landlock layer
that grants the node's work root (every attempt's folder lies in it) and the code bundle
cache. It imports torch and the engine once, then waits on the listening socket the worker
made and passed to it. For each attempt a supervisor sends (protocol.py) it forks a launcher:
the child becomes a session leader, takes the attempt's output file as stdout and stderr,
closes every other descriptor, takes the attempt's environment and working folder, narrows
its sandbox to the attempt's plan (`SandboxPlan.narrow`), and runs `worker.launcher.main`,
which forks the ranks in turn.

The server stays single-threaded (a fork copies only the calling thread: a lock another
thread held would stay held in the child forever) and never computes with torch (an OpenMP
pool or CUDA context does not survive a fork). It checks the first at start and refuses to
serve otherwise. It exits when the worker that started it is gone, killing its launchers'
process groups; a launcher whose supervisor hangs up is killed the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import select
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback
from typing import Any, NoReturn

from setproctitle import getproctitle, setproctitle

from worker.forkserver.protocol import ProtocolError, receive, send
from worker.process_titles import title_launcher
from worker.sandbox import SandboxPlan
from worker.sandbox.enter import EXIT_SANDBOX_FAILED, close_inherited_fds

log = logging.getLogger("worker.forkserver")

# What every launcher and rank imports, imported here once, before the first fork; and what
# a run imports lazily on its way: torch's optimisers import torch._dynamo (and sympy) when the
# first one is made, the run's pictures matplotlib.
PRELOADED = (
    "torch",
    "torch.distributed",
    "torch.multiprocessing",
    "torch._dynamo",
    "worker.launcher",
    "worker.rank",
    "worker.gan.plots",
)
# Seconds between looks at the worker (is it still our parent?) and at ended launchers.
WATCH_INTERVAL_S = 0.1
PEER_CREDENTIALS = struct.Struct("3i")  # SO_PEERCRED: pid, uid, gid


class ForkServer:
    """The serving loop's state: the listening socket, the connections that have not yet
    sent their attempt, and each forked launcher's supervisor connection (None once that
    supervisor hung up; the launcher is then killed and only waits to be reaped)."""

    def __init__(self, listener: socket.socket, worker_pid: int, worker_uid: int) -> None:
        self.listener = listener
        self.worker_pid = worker_pid
        self.worker_uid = worker_uid
        self.waiting: set[socket.socket] = set()
        self.launchers: dict[int, socket.socket | None] = {}

    def serve(self) -> None:
        while os.getppid() == self.worker_pid:
            watched = [self.listener, *self.waiting, *filter(None, self.launchers.values())]
            ready, _, _ = select.select(watched, [], [], WATCH_INTERVAL_S)
            for connection in ready:
                if connection is self.listener:
                    self._accept()
                elif connection in self.waiting:
                    self._take_request(connection)
                else:
                    self._supervisor_spoke(connection)
            self._reap()
        log.warning("fork server: the worker %d is gone; stopping", self.worker_pid)
        for pid in self.launchers:
            _kill_group(pid)

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER_CREDENTIALS.size)
        pid, uid, _ = PEER_CREDENTIALS.unpack(raw)
        if uid != self.worker_uid:  # only the worker's supervisors start attempts
            log.warning("fork server: refused process %d of uid %d", pid, uid)
            connection.close()
            return
        self.waiting.add(connection)

    def _take_request(self, connection: socket.socket) -> None:
        self.waiting.discard(connection)
        try:
            request, fds = receive(connection, max_fds=1)
        except (OSError, ProtocolError) as error:
            log.warning("fork server: dropped a request: %s", error)
            connection.close()
            return
        if request is None or len(fds) != 1 or not _well_formed(request) or _hung_up(connection):
            for fd in fds:
                os.close(fd)
            connection.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        server_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            _become_launcher(request, fds[0], server_pid)
        os.close(fds[0])
        self.launchers[pid] = connection
        try:
            send(connection, {"pid": pid})
        except OSError:  # the supervisor left in between: nothing may run for it
            self._supervisor_spoke(connection)

    def _supervisor_spoke(self, connection: socket.socket) -> None:
        """A supervisor says nothing after its request: this is its hang-up (or a breach of
        the protocol, treated alike). Its launcher's group is killed."""
        for pid, held in self.launchers.items():
            if held is connection:
                _kill_group(pid)
                self.launchers[pid] = None
        connection.close()

    def _reap(self) -> None:
        while self.launchers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.launchers.pop(pid, None)
            if connection is not None:
                with contextlib.suppress(OSError):
                    send(connection, {"exit": os.waitstatus_to_exitcode(status)})
                connection.close()


def _well_formed(request: dict[str, Any]) -> bool:
    argv, env = request.get("argv"), request.get("env")
    return (
        isinstance(argv, list)
        and all(isinstance(a, str) for a in argv)
        and isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        and isinstance(request.get("cwd"), str)
        and isinstance(request.get("plan"), str)
    )


def _hung_up(connection: socket.socket) -> bool:
    """Whether the supervisor closed its end already (it gave up waiting for us)."""
    poller = select.poll()
    poller.register(connection, select.POLLHUP | select.POLLRDHUP)
    return bool(poller.poll(0))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _become_launcher(request: dict[str, Any], output_fd: int, server_pid: int) -> NoReturn:
    """The forked child: become the attempt's launcher process, as the shim and the exec of
    `python -m worker.launcher` would have made it, and run it. Never returns."""
    try:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        close_inherited_fds(())
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # found again from the attempt's TMPDIR
        SandboxPlan.from_json(request["plan"]).narrow()
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.write(2, f"sandbox: could not sandbox the launcher: {error}\n".encode())
        os._exit(EXIT_SANDBOX_FAILED)
    code = 1
    try:
        from worker.launcher import main

        argv = [*_without_option(request["argv"], "--parent-pid"), "--parent-pid", str(server_pid)]
        title_launcher(argv)
        code = main(argv, start_method="fork")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _without_option(argv: list[str], option: str) -> list[str]:
    """`argv` less `option` and its value: the launcher's parent is this server, not the
    supervisor that named itself."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def preload() -> None:
    for name in PRELOADED:
        importlib.import_module(name)


def _cuda_initialised() -> bool:
    import torch

    return bool(torch.cuda.is_initialized())


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen-fd", type=int, required=True, help="the worker's socket")
    parser.add_argument("--worker-pid", type=int, required=True, help="exit when it is gone")
    parser.add_argument("--worker-uid", type=int, required=True, help="whom to serve")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(process)d: %(message)s")
    started = time.monotonic()
    preload()
    threads = thread_count()
    if threads != 1:
        log.error("fork server: %d threads after its imports; forking would be unsafe", threads)
        return 1
    if _cuda_initialised():
        log.error("fork server: CUDA was initialised by its imports; a fork cannot use it")
        return 1
    # setproctitle finds the process's argument area at its first call, which must come
    # before a child empties the environment (it looks for the area through it).
    setproctitle(getproctitle())
    listener = socket.socket(fileno=args.listen_fd)
    log.info("fork server ready in %.1f s", time.monotonic() - started)
    ForkServer(listener, args.worker_pid, args.worker_uid).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
