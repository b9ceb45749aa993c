"""Opening the store the config names: the one place that knows every backend.

Apart from the interface (`base`), so that the backends can import the interface without an
import circle through the function that chooses between them.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from shared.config import Settings
from shared.storage.base import Storage
from shared.storage.local import LocalStorage
from shared.storage.retrying import RetryingStorage


def open_storage(settings: Settings, *, patient: bool = False) -> Storage:
    """The backend GANFORGE_STORAGE_URL names: s3://bucket/prefix or file:///path.

    `patient` (workers) rides out a store that is briefly unreachable, retrying for
    GANFORGE_STORAGE_RETRY_S; the API is not patient: it answers 503 at once and lets its
    client retry, rather than hold a request thread for minutes."""
    store = _open_backend(settings)
    if patient and settings.storage_retry_s > 0:
        return RetryingStorage(store, settings.storage_retry_s)
    return store


def _open_backend(settings: Settings) -> Storage:
    parsed = urlparse(settings.storage_url)
    if parsed.scheme == "s3":
        # boto3 loads only where S3 is used: the embedded mode's processes start without it.
        from shared.storage.s3 import S3Storage

        return S3Storage(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint_url=settings.s3_endpoint_url,
            public_endpoint_url=settings.s3_public_endpoint_url,
        )
    # Path.as_uri() percent-encodes (a space becomes %20), so decode back to the folder name.
    return LocalStorage(unquote(parsed.path))
