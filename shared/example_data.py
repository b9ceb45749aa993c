"""The data the example specs (examples/*.json) name, kept in the service's own store.

A spec's `data.path` must be an absolute folder under a data root the operator configured
(none by default), so no path in a shipped spec could work on every machine. The examples
name a store key under `datasets/` instead, where a lab keeps shared data: `examples/mnist.json`
reads `datasets/examples/mnist/`, the repository's 4,000-digit MNIST slice with its labels
(tests/data/mnist). The embedded service stores it there when it starts (`ganforge up`,
`ganforge demo`: cli/embedded.py `prepare`), and `ganforge admin seed-examples` does the same
for any service, run where its settings are. `bench.quality` trains the examples in-process
from the repository's own copy (`local_example_path`).
"""

from __future__ import annotations

from pathlib import Path

from shared.storage.base import Storage

REPOSITORY = Path(__file__).resolve().parents[1]
# Store prefix -> (the repository's folder, the files of it to store).
EXAMPLE_DATA: dict[str, tuple[Path, tuple[str, ...]]] = {
    "datasets/examples/mnist": (
        REPOSITORY / "tests" / "data" / "mnist",
        ("t10k-4000-images-idx3-ubyte.gz", "t10k-4000-labels-idx1-ubyte.gz"),
    ),
}


class ExampleDataMissingError(FileNotFoundError):
    """The repository's copy of example data is not here (an install without the repo)."""


def local_example_path(key: str | None) -> Path | None:
    """The repository's folder holding the example data stored under `key`; None for any
    other key."""
    if key is None or key.rstrip("/") not in EXAMPLE_DATA:
        return None
    return EXAMPLE_DATA[key.rstrip("/")][0]


def seed_example_data(store: Storage) -> list[str]:
    """Store each example file the store lacks (or holds with another size) from the
    repository's copy; the keys written. ExampleDataMissingError when the copy is absent."""
    written = []
    for prefix, (folder, names) in EXAMPLE_DATA.items():
        stored = {info.key: info.size for info in store.list(prefix + "/")}
        for name in names:
            source, key = folder / name, f"{prefix}/{name}"
            if not source.is_file():
                raise ExampleDataMissingError(
                    f"{source} is missing: the example data is stored from a checkout of "
                    "the ganforge repository"
                )
            if stored.get(key) != source.stat().st_size:
                store.put(key, source.read_bytes())
                written.append(key)
    return written
