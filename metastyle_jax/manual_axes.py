"""The `shard_map` manual axes an array varies over, and casts that make arrays agree on them.

Inside `jax.shard_map`, an array's type records the mesh axes it varies over; a custom_vjp's backward pass
must return cotangents of exactly its inputs' types, and an FFI call's result varies over none."""

import jax


def varying(array):
    """The `shard_map` manual axes `array` varies over (empty outside shard_map)."""
    kind = getattr(jax.typeof(array), "manual_axis_type", None)
    return frozenset(kind.varying) if kind is not None else frozenset()


def vary_like(array, *others):
    """`array` cast to vary also over the manual axes of `others` (unchanged outside shard_map)."""
    missing = frozenset().union(*map(varying, others)) - varying(array)
    return jax.lax.pcast(array, tuple(sorted(missing)), to="varying") if missing else array


def same_variance(*arrays):
    """The arrays cast to vary over the union of their `shard_map` manual axes (as JAX's own convolution
    rule does implicitly), so that a custom_vjp's backward pass returns cotangents of its inputs' types;
    outside `shard_map`, the arrays unchanged."""
    return tuple(vary_like(a, *arrays) for a in arrays)
