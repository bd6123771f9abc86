"""A background prefetcher: the next items of an iterator (training batches, video frames) are produced in a
thread while the caller computes on the current one."""

import queue
import threading

_ITEM, _END, _ERROR = "item", "end", "error"


def _calls(fn):
    """Items fn(), fn(), ... until fn raises StopIteration."""
    while True:
        try:
            item = fn()
        except StopIteration:
            return
        yield item


def _produce(items, out, stop):
    """Thread body: put ("item", x) for each item, then ("end", None) or ("error", exception), until `stop`."""

    def put(message):
        while not stop.is_set():
            try:
                out.put(message, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        while not stop.is_set():
            try:
                item = next(items)
            except StopIteration:
                put((_END, None))
                return
            if not put((_ITEM, item)):
                return
    except BaseException as e:  # handed to the consumer, which re-raises it
        put((_ERROR, e))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


class Prefetcher:
    """An iterator whose items a background thread computes up to `depth` ahead.

    An exception in the producer is re-raised in the consumer at the point it would have occurred; `close()`
    (or leaving a `with` block) stops the thread and closes a generator source.
    """

    def __init__(self, source, depth=2):
        if int(depth) < 1:
            raise ValueError(f"prefetch depth must be at least 1, got {depth}")
        items = iter(source) if hasattr(source, "__iter__") else _calls(source)
        self._queue = queue.Queue(maxsize=int(depth))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=_produce, args=(items, self._queue, self._stop), daemon=True)
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == _ITEM:
            return value
        self._done = True
        self._thread.join()
        if kind == _ERROR:
            raise value
        raise StopIteration

    def close(self):
        """Stop the producer (after the item it is computing) and wait for its thread to end."""
        self._done = True
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()


def prefetch(source, depth=2):
    """Iterate `source` (an iterable, or a zero-argument function called until it raises StopIteration)
    `depth` items ahead in a background thread; see `Prefetcher`."""
    return Prefetcher(source, depth)
