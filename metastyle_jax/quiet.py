"""One place that keeps Python from printing exceptions that nobody can catch and that repeat a failure
already reported in one line: Orbax's reads and writes still in flight after an error, a Ctrl-C that lands
in a callback. `drop(predicate)` wraps, once per process, the three hooks through which Python prints such
exceptions (an unraisable exception, one printed by `PyErr_Print` in a foreign thread, one that ends a
thread); every exception no predicate selects is printed as before."""

import sys
import threading

_PREDICATES = []


def drop(predicate):
    """Stop printing the exceptions for which `predicate(exc_type, exc_value)` is true (idempotent)."""
    if predicate not in _PREDICATES:
        _PREDICATES.append(predicate)
    if getattr(sys.unraisablehook, "filtered_by_quiet", False):
        return
    unraisable, excepthook, thread_hook = sys.unraisablehook, sys.excepthook, threading.excepthook
    dropped = lambda exc_type, exc_value: any(p(exc_type, exc_value) for p in _PREDICATES)

    def on_unraisable(u):
        if not dropped(u.exc_type, u.exc_value):
            unraisable(u)

    def on_exception(exc_type, exc_value, tb):
        if not dropped(exc_type, exc_value):
            excepthook(exc_type, exc_value, tb)

    def on_thread(args):
        if not dropped(args.exc_type, args.exc_value):
            thread_hook(args)

    on_unraisable.filtered_by_quiet = True
    sys.unraisablehook, sys.excepthook, threading.excepthook = on_unraisable, on_exception, on_thread
