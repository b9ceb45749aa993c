"""One storage interface with two backends: S3 (boto3) and a local folder (embedded mode).

Use `open_storage(settings)` to get the backend the config names, and `keys` to build every
key: keys are never assembled from user strings anywhere else.
"""

from shared.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    Storage,
    StorageError,
    StorageUnavailableError,
)
from shared.storage.factory import open_storage

__all__ = [
    "ObjectInfo",
    "ObjectNotFoundError",
    "Storage",
    "StorageError",
    "StorageUnavailableError",
    "open_storage",
]
