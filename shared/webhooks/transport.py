"""One POST of a delivery to the addresses that were checked: the URL's host is resolved once,
every address it has is checked (shared/webhooks/addresses.py), and the connection goes to
those addresses in turn (the next only when no connection could be made), never to whatever a
second lookup would answer (DNS rebinding).

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
from urllib3.exceptions import NewConnectionError

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
    outcome = Outcome(None, f"{host} has no address")
    for address in addresses:
        outcome, connected = _post_to(address, url, body, headers, timeout_s)
        if connected:
            break  # an answer, or a failure after the body may have gone: never a second send
    return outcome


def _post_to(
    address: IPAddress, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> tuple[Outcome, bool]:
    """One POST over a connection to `address`; and whether a connection was made at all (if
    not, the next address the name has is tried, as a client that resolved it itself would)."""
    with requests.Session() as session:
        session.trust_env = False  # no proxy or .netrc from the environment
        session.mount(f"{urlsplit(url).scheme}://", PinnedAdapter(address))
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
        except requests.ConnectTimeout:
            return Outcome(None, f"no connection within {timeout_s:g} s"), False
        except requests.Timeout:
            return Outcome(None, f"no answer within {timeout_s:g} s"), True
        except requests.ConnectionError as error:
            return Outcome(None, _reason(error)), not _never_connected(error)
        except requests.RequestException as error:
            return Outcome(None, _reason(error)), True
    return Outcome(status, None if 200 <= status < 300 else f"HTTP {status}"), True


def _never_connected(error: requests.ConnectionError) -> bool:
    cause = error.args[0] if error.args else None
    return isinstance(getattr(cause, "reason", cause), NewConnectionError)


def _reason(error: requests.RequestException) -> str:
    """The cause in a few words ("[Errno 111] Connection refused"), not urllib3's whole chain."""
    cause = error.args[0] if error.args else error
    cause = getattr(cause, "reason", None) or cause
    return re.sub(r"^(?:<[^>]*>|\w+\([^)]*\)): ", "", str(cause))[:500]
