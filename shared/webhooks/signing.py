"""How a delivery is signed: HMAC-SHA256 of the exact body with the webhook's secret, so a
receiver can tell our POSTs from anyone else's (README "Webhooks" shows the check)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# The header's value is `sha256=<hex>`, GitHub's form, so existing receivers' code fits.
SIGNATURE_PREFIX = "sha256="


def new_secret() -> str:
    """32 random bytes as hex: a key as strong as the hash it feeds."""
    return secrets.token_hex(32)


def signature(secret: str, body: bytes) -> str:
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
