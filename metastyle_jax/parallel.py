"""Data parallelism for meta-training: a 1-D device mesh (axis "data"), the styles of a meta-batch split over
it with `jax.shard_map`, theta, the VGG and the optimizer state replicated."""

import dataclasses
import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from metastyle_jax import meta


def data_parallel(method, bilevel, mesh):
    """`method` (an unbound `Bilevel` method (bilevel, theta, batch, t, hyper) -> pytree of means over the
    batch's styles) as a function of (theta, batch, t, hyper) that splits the styles over the mesh axis "data"
    (`jax.shard_map`: each device takes its S / n styles, `styles_in_parallel / n` at a time) and averages
    the per-device means with `pmean`. Explicit rather than left to XLA's automatic partitioning of the
    jitted step, which gave wrong convolution-kernel gradients for a sharded style axis (jax 0.10.2, CPU).
    """
    n = mesh.devices.size
    local = bilevel.replace(settings=dataclasses.replace(
        bilevel.settings, styles_in_parallel=bilevel.settings.styles_in_parallel // n))

    def per_device(local, theta, batch, t, hyper):
        # theta enters replicated; as a device-varying value its gradients stay local (no implicit psum)
        theta = jax.lax.pcast(theta, "data", to="varying")
        return jax.lax.pmean(method(local, theta, batch, t, hyper), "data")

    rep, split = PartitionSpec(), PartitionSpec("data")
    sharded = jax.shard_map(per_device, mesh=mesh, in_specs=(rep, rep, split, rep, rep), out_specs=rep)
    return functools.partial(sharded, local)


def make_mesh(devices=None):
    """A 1-D mesh with axis "data" over `devices` (default: every device of every process)."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), ("data",))


def check_mesh(config, mesh):
    """Raise ValueError unless the styles of a meta-batch split evenly over the mesh and the vmapped groups.
    (Evaluation batches of k * styles_per_batch styles then split too.)"""
    n, s = mesh.devices.size, int(config.styles_per_batch)
    p = meta.styles_at_a_time(s, int(config.styles_in_parallel))
    if p % n:
        raise ValueError(f"the {p} styles processed in parallel (styles_in_parallel, 0: all {s}) must be "
                         f"divisible by the {n} devices")


def shard_batch(batch, mesh):
    """A host batch (the same on every process: batches are a function of (seed, step)) as global arrays
    on the mesh, the leading (style) axis split over "data"; each process places only its own shards."""
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_callback(np.shape(x), sharding, lambda idx: np.asarray(x)[idx]), batch)


def replicate(tree, mesh):
    """A host pytree (the same on every process) as global arrays replicated on every device of the mesh."""
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_callback(np.shape(x), sharding, lambda idx: np.asarray(x)[idx]), tree)


def host_tree(tree):
    """A numpy copy of a pytree of replicated (or single-device) arrays, on every process."""
    return jax.tree_util.tree_map(
        lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x), tree)

