"""An S3 endpoint for tests: moto's server on a free local port, speaking real HTTP.

Tests go through boto3's whole stack (signing, multipart, presigned URLs, paging) instead of
moto's in-process mocks, so what passes here is what MinIO or AWS would see.
"""

from __future__ import annotations

from collections.abc import Callable

from moto.server import ThreadedMotoServer


def start_moto_server() -> tuple[str, Callable[[], None]]:
    """Start moto on 127.0.0.1 and return (endpoint_url, stop).

    Port 0 lets the OS pick a free port, so parallel test runs never collide; moto 5 reports
    the port it got through `get_host_and_port()`.
    """
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}", server.stop
