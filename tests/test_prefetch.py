"""The background prefetcher (metastyle_jax.prefetch)."""

import itertools
import threading

import numpy as np
import pytest

from metastyle_jax import data, prefetch


def test_prefetch_matches_direct_iteration():
    content = data.ContentData(size=32, seed=1)
    direct = [content.batch_at(t, 2) for t in range(3, 8)]
    with prefetch.prefetch((content.batch_at(t, 2) for t in itertools.count(3)), depth=2) as ahead:
        fetched = list(itertools.islice(ahead, 5))
    for x, y in zip(direct, fetched, strict=True):
        np.testing.assert_array_equal(x, y)
    assert list(prefetch.prefetch(range(7))) == list(range(7))
    counter = iter(range(4))
    assert list(prefetch.prefetch(lambda: next(counter), depth=1)) == [0, 1, 2, 3]


def test_prefetch_propagates_exceptions():
    def failing():
        yield 1
        yield 2
        raise RuntimeError("loader broke")

    got = []
    with pytest.raises(RuntimeError, match="loader broke"):
        for item in prefetch.prefetch(failing()):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_close_stops_the_thread():
    finished = threading.Event()

    def endless():
        try:
            yield from itertools.count()
        finally:
            finished.set()

    before = threading.active_count()
    ahead = prefetch.prefetch(endless(), depth=3)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    assert finished.is_set() and threading.active_count() == before
    with pytest.raises(StopIteration):
        next(ahead)
    with pytest.raises(ValueError):
        prefetch.prefetch(range(3), depth=0)
