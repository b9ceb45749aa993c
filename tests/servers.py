"""PostgreSQL and Redis servers that the test session starts, owns, and can break on purpose.

Unless `GANFORGE_TEST_DATABASE_URL` / `GANFORGE_TEST_REDIS_URL` name servers to use instead, the
session starts its own: a throwaway PostgreSQL cluster (`initdb` + `postgres`, found on PATH or
through `pg_config --bindir`) and a `redis-server`, each in a temporary folder on a free port of
127.0.0.1, deleted when the session ends. Owning them is what lets a fault test `stop()` one,
`kill()` it (SIGKILL to its whole process group, so nothing of it survives to answer), and
`start()` it again on the same port and data, so that clients holding the URL reconnect.

Written here rather than taken from pytest-postgresql / pytest-redis: PostgreSQL refuses to run
as root, which is how the lab's CI runs, so the cluster is created and run as an unprivileged
account; and the kill -9 / restart-on-the-same-port cycle is the point of owning the servers.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import redis

from worker.gan.distributed import find_free_port

LOCALHOST = "127.0.0.1"
# A cold `postgres` start on a busy 2-core machine takes about a second; crash recovery after a
# kill -9 a little more. 60 s only bounds a server that will never come up.
READY_TIMEOUT_S = 60.0
# A fast shutdown (PostgreSQL) or SIGTERM (Redis) finishes in well under a second; past this the
# server is killed so a session never hangs on tear-down.
STOP_TIMEOUT_S = 30.0


class ServerUnavailableError(RuntimeError):
    """A server the suite needs cannot be started here; the message says what to install."""


class TestServer(ABC):
    """A server the suite talks to. `owned` says whether it can be stopped, killed and started."""

    owned: bool = False

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL clients connect with; it stays the same across restarts."""

    def stop(self) -> None:
        self._refuse("stop")

    def kill(self) -> None:
        self._refuse("kill")

    def start(self) -> None:
        self._refuse("start")

    def _refuse(self, action: str) -> None:
        raise ServerUnavailableError(
            f"cannot {action} {self.url}: the suite does not own this server. Unset "
            "GANFORGE_TEST_DATABASE_URL / GANFORGE_TEST_REDIS_URL to let it start its own."
        )


class ExternalServer(TestServer):
    """A server named by the environment: used as it is, never stopped."""

    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def url(self) -> str:
        return self._url


class OwnedServer(TestServer):
    """A server process of ours in its own process group, on a port fixed for its lifetime."""

    owned = True
    # What a graceful stop sends: PostgreSQL's "fast shutdown" is SIGINT, Redis's is SIGTERM.
    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(self, folder: Path, run_as: pwd.struct_passwd | None = None) -> None:
        self.folder = folder
        self.port = find_free_port()
        self.run_as = run_as
        self.log_path = folder / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def command(self) -> list[str]:
        """The foreground server command line."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the server answers a client now."""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (a no-op when it runs) and return once it answers."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.run_as.pw_uid if self.run_as else None,
                group=self.run_as.pw_gid if self.run_as else None,
            )
        self._wait_ready()

    def stop(self) -> None:
        """Shut the server down cleanly, as an operator would."""
        self._signal_and_wait(self.stop_signal)

    def kill(self) -> None:
        """SIGKILL the server's whole process group: it vanishes mid-work, as in a crash."""
        self._signal_and_wait(signal.SIGKILL)

    def _signal_and_wait(self, signum: signal.Signals) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signum)
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()
        # Children that outlived the leader (PostgreSQL backends after a kill) go with the group.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running:
                raise ServerUnavailableError(f"{self.command()[0]} exited:\n{self.log_tail()}")
            if self.ping():
                return
            time.sleep(0.05)
        raise ServerUnavailableError(
            f"{self.command()[0]} not answering after {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, chars: int = 3000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]


class PostgresServer(OwnedServer):
    """A throwaway PostgreSQL cluster: trust auth, TCP only, no fsync (see `command`)."""

    stop_signal = signal.SIGINT

    def __init__(self, folder: Path, bindir: Path, run_as: pwd.struct_passwd | None) -> None:
        super().__init__(folder, run_as)
        self.bindir = bindir
        self.data_dir = folder / "data"
        options = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.data_dir), *options],
            capture_output=True,
            text=True,
            user=run_as.pw_uid if run_as else None,
            group=run_as.pw_gid if run_as else None,
        )
        if initdb.returncode != 0:
            raise ServerUnavailableError(f"initdb failed:\n{initdb.stdout}{initdb.stderr}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOCALHOST}:{self.port}/postgres"

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": LOCALHOST,
            "port": str(self.port),
            "unix_socket_directories": "",
            # Speed without lying about crashes: a commit still writes its WAL before it returns
            # (synchronous_commit stays on), so it survives a kill -9 of the server; only the
            # flush to the disk itself is skipped, which matters for a machine crash alone.
            "fsync": "off",
            "full_page_writes": "off",
            # API threads, dispatcher, worker, supervisors and the tests themselves.
            "max_connections": "200",
        }
        options = [item for name, value in settings.items() for item in ("-c", f"{name}={value}")]
        return [str(self.bindir / "postgres"), "-D", str(self.data_dir), *options]

    def ping(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False


class RedisServer(OwnedServer):
    """A throwaway Redis that keeps nothing on disk: a restart comes back empty, like a crash."""

    def __init__(self, folder: Path, binary: Path) -> None:
        super().__init__(folder)
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def command(self) -> list[str]:
        # Nothing on disk: a restart comes back empty, as after a crash of a cache-only Redis.
        ephemeral = ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        where = ["--bind", LOCALHOST, "--port", str(self.port), "--dir", str(self.folder)]
        return [str(self.binary), *where, *ephemeral]

    def ping(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=2).ping())
        except redis.RedisError:
            return False


def postgres_bindir() -> Path:
    """The folder holding `initdb` and `postgres`: PATH first, then `pg_config --bindir`."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        answer = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        bindir = Path(answer.stdout.strip())
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    raise ServerUnavailableError(
        "PostgreSQL's server programs (initdb, postgres) are not on PATH nor in `pg_config "
        "--bindir`: install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew "
        "install postgresql) or set GANFORGE_TEST_DATABASE_URL to a server the tests may create "
        "databases on"
    )


def redis_binary() -> Path:
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise ServerUnavailableError(
        "redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install redis-server; "
        "macOS: brew install redis) or set GANFORGE_TEST_REDIS_URL to a server the tests may use"
    )


def _unprivileged_account() -> pwd.struct_passwd | None:
    """None when we are not root; else the account PostgreSQL will run as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServerUnavailableError("running as root and no 'postgres' or 'nobody' account exists")


@contextmanager
def _scratch_folder(prefix: str, owner: pwd.struct_passwd | None = None) -> Iterator[Path]:
    # Under the system temp folder, not pytest's (which is private to root): the server's own
    # account must be able to reach it.
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[TestServer]:
    """The server named by GANFORGE_TEST_DATABASE_URL, else a throwaway cluster of our own."""
    named = os.environ.get("GANFORGE_TEST_DATABASE_URL")
    if named:
        yield ExternalServer(named)
        return
    bindir, account = postgres_bindir(), _unprivileged_account()
    with _scratch_folder("ganforge-test-pg-", account) as folder:
        yield from _running(PostgresServer(folder, bindir, account))


@contextmanager
def redis_server() -> Iterator[TestServer]:
    """The server named by GANFORGE_TEST_REDIS_URL, else a throwaway redis-server of our own."""
    named = os.environ.get("GANFORGE_TEST_REDIS_URL")
    if named:
        yield ExternalServer(named)
        return
    binary = redis_binary()
    with _scratch_folder("ganforge-test-redis-") as folder:
        yield from _running(RedisServer(folder, binary))


def _running(server: OwnedServer) -> Iterator[TestServer]:
    """Start `server`, hand it out, and stop it however the session ends."""
    try:
        server.start()
        yield server
    finally:
        server.stop()
