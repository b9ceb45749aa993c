"""One POST of a delivery to the address that was checked: the URL's host is resolved once,
every address it has is checked (shared/webhooks/addresses.py), and the connection goes to
the first of them, not to whatever a second lookup would answer (DNS rebinding).

The pinning is requests' own extension point for this, `HTTPAdapter.
build_connection_pool_key_attributes`: the pool connects to the checked IP while urllib3 sends
the URL's host name as SNI and verifies the certificate against it (`server_hostname`), and
the request carries the URL's `Host` header, so https keeps its full verification. Redirects
are not followed and no proxy from the environment is used: the receiver registered, at the
address checked, is the one that gets the body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from shared.webhooks.addresses import (
    DEFAULT_PORTS,
    AddressPolicy,
    AddressRefusedError,
    IPAddress,
    UnresolvableHostError,
    resolve,
)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the receiver's status, or why there was none. `final`: no
    later attempt can do better (the address is refused), so the delivery fails now."""

    status: int | None
    error: str | None
    final: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class PinnedAdapter(HTTPAdapter):
    """Connects to `address` whatever the URL's host resolves to, with that host as the TLS
    server name (SNI and certificate check)."""

    def __init__(self, address: IPAddress) -> None:
        super().__init__(max_retries=0)
        self.address = address

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        # The URL's own Host (as prepared: IDNA, no userinfo), not the IP the pool connects to.
        request.headers["Host"] = urlsplit(request.url or "").netloc.rpartition("@")[2]
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = host_params["host"]
            pool_kwargs["assert_hostname"] = host_params["host"]
        address = str(self.address)
        host_params["host"] = f"[{address}]" if self.address.version == 6 else address
        return host_params, pool_kwargs


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    policy: AddressPolicy,
) -> Outcome:
    """POST `body` to `url` at a checked address; never raises for the receiver's faults."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses = resolve(host, parts.port or DEFAULT_PORTS[parts.scheme])
        policy.check(addresses)
    except AddressRefusedError as refused:
        return Outcome(None, f"refused: {refused}", final=True)
    except UnresolvableHostError as error:
        return Outcome(None, str(error))  # DNS may answer later: an ordinary failed attempt
    with requests.Session() as session:
        session.trust_env = False  # no proxy or .netrc from the environment
        session.mount(f"{parts.scheme}://", PinnedAdapter(addresses[0]))
        try:
            # stream=True, then closed unread: a receiver's answer body is not ours to buffer.
            with session.post(
                url,
                data=body,
                headers=headers,
                timeout=timeout_s,
                allow_redirects=False,
                stream=True,
            ) as response:
                status = response.status_code
        except requests.Timeout:
            return Outcome(None, f"no answer within {timeout_s:g} s")
        except requests.RequestException as error:
            return Outcome(None, _reason(error))
    return Outcome(status, None if 200 <= status < 300 else f"HTTP {status}")


def _reason(error: requests.RequestException) -> str:
    """The cause in a few words ("[Errno 111] Connection refused"), not urllib3's whole chain."""
    cause = error.args[0] if error.args else error
    cause = getattr(cause, "reason", None) or cause
    return re.sub(r"^(?:<[^>]*>|\w+\([^)]*\)): ", "", str(cause))[:500]
