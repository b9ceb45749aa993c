"""A TCP proxy in front of a server, which a test can stop (refuse every connection) or pause
(accept and go silent) and then bring back, on the same port.

The S3 server in tests is moto, which keeps its objects in memory: killing it would lose the
bucket, and a real S3 or MinIO outage does not lose data. The proxy gives the two outages a
client can see, without touching the server behind it: `stop()` is a server that is gone
(connections refused, open ones reset), `pause()` a server that hangs (a SIGSTOPped process, a
wedged load balancer: bytes go in, nothing comes back until `resume()`).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from urllib.parse import urlparse

from tests.servers import LOCALHOST

# How often the pump threads look at the proxy's state between reads.
_POLL_S = 0.1
_CHUNK = 64 * 1024


class FaultProxy:
    """Forwards 127.0.0.1:<port> to the target URL's host and port."""

    def __init__(self, target_url: str) -> None:
        target = urlparse(target_url)
        self.target = (target.hostname or LOCALHOST, target.port or 80)
        self.scheme = target.scheme or "http"
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._paused = threading.Event()
        self._listener: socket.socket | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOCALHOST}:{self.port}"

    def start(self) -> None:
        """Listen (again, on the same port): the server is back."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOCALHOST, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """The server is gone: new connections are refused and open ones are reset."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: on Linux, close() alone leaves a thread blocked in accept()
            # holding the socket open, still accepting.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            _reset(connection)

    def pause(self) -> None:
        """The server hangs: connections are accepted and requests sent, but no byte moves."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def close(self) -> None:
        self.resume()
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                if self._paused.is_set():
                    self._paused.wait(_POLL_S)
                    if self._paused.is_set():
                        continue
                readable, _, _ = select.select([source], [], [], _POLL_S)
                if not readable:
                    continue
                data = source.recv(_CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except (OSError, ValueError):
            pass  # reset by stop(), or the other side closed
        finally:
            for side in (source, sink):
                with self._lock:
                    self._connections.discard(side)
                with contextlib.suppress(OSError):
                    side.shutdown(socket.SHUT_RDWR)
                side.close()


def _reset(connection: socket.socket) -> None:
    """Close with RST rather than FIN, as a dead server's host does."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        connection.close()
