"""The warm sampler's cache of loaded checkpoints stays within its bound, least recent out."""

import pytest

from worker.warm.cache import LoadedCache


def test_the_cache_never_holds_more_than_its_bound_and_drops_the_least_recently_used() -> None:
    cache: LoadedCache[str] = LoadedCache(capacity=2)
    loads: list[str] = []

    def loader(key: str):  # type: ignore[no-untyped-def]
        return lambda: loads.append(key) or f"generator {key}"

    for key in ("a", "b", "a", "c", "a", "b"):
        assert cache.get_or_load(key, loader(key)) == f"generator {key}"
        assert len(cache) <= 2
    # a, b loaded; a hit; c evicts b (a was used last); a hit; b evicts c.
    assert loads == ["a", "b", "c", "b"]
    assert cache.keys() == ["a", "b"]
    assert (cache.hits, cache.misses) == (2, 4)


def test_a_load_that_fails_caches_nothing() -> None:
    cache: LoadedCache[str] = LoadedCache(capacity=1)

    def broken() -> str:
        raise OSError("store away")

    with pytest.raises(OSError):
        cache.get_or_load("a", broken)
    assert len(cache) == 0
    assert cache.get_or_load("a", lambda: "loaded") == "loaded"


def test_a_cache_holds_at_least_one_generator() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LoadedCache(capacity=0)
