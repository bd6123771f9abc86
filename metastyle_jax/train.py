"""Meta-train MetaStyle's theta (Algorithm 1): `python -m metastyle_jax.train --config configs/metastyle.py`.

Writes into --workdir: config.json, checkpoints/ (Orbax, every checkpoint_every iterations, the last
keep_checkpoints kept), tb/ (TensorBoard events), metrics.jsonl, loss_curves.png, samples/ (the
style-neutral output M(I_c; theta) of fixed validation contents) and, at the end, theta/ (the model for
`adapt` and `stylize`). `--resume` continues from the last checkpoint exactly: state, step, data order.

Devices: the styles of each meta-batch are split over every local device (a 1-D mesh, theta replicated).
Several hosts: start the same command on each with --coordinator HOST:PORT --num-processes N
--process-id I (or --distributed where JAX detects the cluster itself, e.g. SLURM or Cloud TPU).
"""

import dataclasses
import itertools
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from metastyle_jax import (
    checkpoints, checks, config as config_lib, data, images, meta, onednn, outer, outputs, parallel, plotting,
    prefetch, transformer, vgg_weights)
from metastyle_jax.errors import UserError

LOCK = ".lock"  # the workdir's lock file (`lock_workdir`); not a run file: it stays, empty
RUN_FILES = ("config.json", "checkpoints", "tb", "metrics.jsonl", "loss_curves.png", "samples", "theta",
             "damaged_checkpoints")
# Keys a resumed run may change: how long it runs, how it reports, and its learning rates (e.g. after a
# NaN); never what it computes.
RESUMABLE_KEYS = ("num_steps", "inner_lr", "outer_lr", "log_every", "plot_every", "sample_every", "num_samples",
                  "eval_every", "checkpoint_every", "keep_checkpoints", "data.prefetch", "dtype")
# Keys added to the configs with a default that changes what a run computes: a run saved before one existed
# computed with this value, whatever the configs say now.
BEFORE_KEY = {"resampling": "nearest"}
CURVES = {"inner_loss": "inner (training contents, before adaptation)",
          "outer_loss": "outer (validation contents, after adaptation)",
          "eval_outer_loss": "outer on the fixed evaluation batch"}


class Diverged(Exception):
    """A loss or the meta-gradient became NaN or inf at meta-iteration `iteration` (counting from 1)."""

    def __init__(self, message, iteration=None):
        super().__init__(message)
        self.iteration = iteration


def check_config(cfg):
    """Raise a UserError naming the first setting a meta-training run cannot use."""
    try:
        meta.settings_from_config(cfg)
    except ValueError as e:
        raise UserError(f"config: {e}") from None
    positive = ("styles_per_batch", "batch_size", "num_steps", "inner_steps", "log_every", "checkpoint_every",
                "keep_checkpoints", "data.content_size", "data.style_size", "data.prefetch", "num_samples")
    for key in positive:
        value = cfg
        for part in key.split("."):
            value = value[part]
        if value < 1:
            raise UserError(f"config: {key} must be at least 1, not {value}")
    for key in ("plot_every", "sample_every", "eval_every", "outer_warmup"):
        if cfg[key] < 0:
            raise UserError(f"config: {key} must be >= 0 (0: never), not {cfg[key]}")
    for key in ("inner_lr", "outer_lr", "lr_decay"):
        if not (math.isfinite(cfg[key]) and cfg[key] >= 0):
            raise UserError(f"config: {key} must be a finite number >= 0, not {cfg[key]}")
    for key in ("content_size", "style_size"):
        checks.check_side(f"config: data.{key}", cfg.data[key])
    s, b, t = cfg.styles_per_batch, cfg.batch_size, cfg.inner_steps
    checks.check_memory((s * b * (t + 1) * cfg.data.content_size ** 2 + s * cfg.data.style_size ** 2) * 12
                        * (cfg.data.prefetch + 1), "the meta-batches in flight", "use a smaller data.content_size, "
                        "data.style_size, batch_size, styles_per_batch or data.prefetch")
    try:
        meta.styles_at_a_time(cfg.styles_per_batch, cfg.styles_in_parallel)
    except ValueError as e:
        raise UserError(f"config: {e}") from None


class MetaData:
    """The meta-batches of a run, each a pure function of (config, iteration t).

    Content: `train` and `val` ContentData (two splits, or one dataset sampled twice when
    data.split_content is False); styles: StyleData. `batch_at(t)` -> numpy dict as `meta` documents.
    """

    def __init__(self, cfg):
        d = cfg.data
        self.cfg = cfg
        common = dict(size=d.content_size, crop=d.crop, val_fraction=d.val_fraction,
                      data_dir=d.tfds_data_dir or None, zoom=d.get("zoom", 1.0))
        self.train = data.ContentData(d.content, split="train", seed=cfg.seed, **common)
        if d.split_content:
            self.val = data.ContentData(d.content, split="val", seed=cfg.seed, **common)
        else:
            self.val = data.ContentData(d.content, split="train", seed=cfg.seed + 1, **common)
        self.styles = data.StyleData(d.styles, size=d.style_size, seed=cfg.seed)
        if len(self.styles) < cfg.styles_per_batch:
            print(f"note: {len(self.styles)} styles for meta-batches of {cfg.styles_per_batch}: some styles "
                  f"repeat within a meta-batch", file=sys.stderr)

    def describe(self):
        """Lines naming the data of the run."""
        return [f"content train: {self.train.describe()}", f"content val: {self.val.describe()}",
                f"styles: {len(self.styles)} from {self.styles.origin} ({self.cfg.data.styles})"]

    def batch_at(self, t):
        """Meta-batch t: {"train": (S, B, H, W, 3) or (S, T, B, H, W, 3), "val": (S, B, H, W, 3),
        "style": (S, Hs, Ws, 3)}, float32 in [0, 1]."""
        c = self.cfg
        s, b, steps = c.styles_per_batch, c.batch_size, c.inner_steps
        if c.data.share_content:
            train = np.broadcast_to(self.train.batch_at(t, b), (s, b) + self.train.batch_at(t, b).shape[1:])
            val = np.broadcast_to(self.val.batch_at(t, b), train.shape)
        else:
            train = np.stack([np.stack([self.train.batch_at((t * s + k) * steps + i, b) for i in range(steps)])
                              for k in range(s)])
            train = train[:, 0] if steps == 1 else train
            val = np.stack([self.val.batch_at(t * s + k, b) for k in range(s)])
        return {"train": np.ascontiguousarray(train), "val": np.ascontiguousarray(val),
                "style": self.styles.style_at(t, s)}

    def eval_batch(self, max_styles=16):
        """The fixed held-out batch the run's E(theta) curve is measured on: every style (up to
        `max_styles`, rounded up to a multiple of styles_per_batch), each with its own validation and
        training contents drawn far from the start of their streams."""
        c = self.cfg
        s, b = c.styles_per_batch, c.batch_size
        n = s * math.ceil(min(len(self.styles), max_styles) / s)
        train = np.stack([self.train.batch_at(10**6 + k, b) for k in range(n)])
        val = np.stack([self.val.batch_at(10**6 + k, b) for k in range(n)])
        if c.inner_steps > 1 and not c.data.share_content:
            train = np.repeat(train[:, None], c.inner_steps, axis=1)
        return {"train": train, "val": val, "style": self.styles.style_at(0, n)}

    def sample_contents(self):
        """The fixed validation contents of the sample grids: (num_samples, H, W, 3)."""
        return self.val.batch_at(10**6 + 7, self.cfg.num_samples)


# What a run writes inside its folders: --force deletes a folder only if everything in it matches
RUN_ENTRIES = {"checkpoints": r"\d+(\..*)?", "damaged_checkpoints": r"\d+(\.\d+)?", "tb": r"events\.out\.tfevents\..*",
               "samples": r"step_\d{7}\.png"}


def foreign_entries(workdir):
    """Paths inside `workdir`'s run folders that a run did not write (names no run writes; a theta/ that is not
    a model of this program)."""
    found = []
    for name, pattern in RUN_ENTRIES.items():
        folder = workdir / name
        if folder.is_dir():
            found += [folder / p for p in sorted(os.listdir(folder)) if not re.fullmatch(pattern, p)]
    theta = workdir / "theta"
    if theta.is_dir() and not outputs.written_by_us(theta):
        found.append(theta)
    return found


def lock_workdir(workdir):
    """An exclusive OS lock (flock) on `workdir`/.lock, held while the returned file stays open (the process's
    life); UserError if another run holds it. Only process 0 locks (the others share its folder)."""
    import fcntl

    if jax.process_index() != 0:
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    handle = open(workdir / LOCK, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UserError(f"another train run is using --workdir {workdir}: wait for it to end or choose "
                        "another folder") from None
    return handle


def prepare_workdir(workdir, resume, force):
    """Check what is in `workdir` against --resume/--force, lock it (`lock_workdir`); with --force, delete the
    previous run's files, refusing (nothing deleted) if its folders hold anything a run did not write. Returns
    the lock's handle, to keep open while the run lasts."""
    workdir = Path(workdir)
    existing = [name for name in RUN_FILES if (workdir / name).exists()]
    if workdir.exists() and not workdir.is_dir():
        raise UserError(f"--workdir {workdir} is a file, not a folder")
    if resume:
        if not (workdir / "config.json").exists():
            raise UserError(f"--resume: {workdir} holds no run (no config.json)")
        return lock_workdir(workdir)
    if existing and not force:
        raise UserError(f"{workdir} already holds a run ({', '.join(existing)}): pass --resume to continue "
                        "it or --force to start over")
    foreign = foreign_entries(workdir)
    if foreign:
        raise UserError(f"--force would delete {foreign[0]}, which no run wrote ({len(foreign)} such "
                        "entries): nothing was deleted; move them or choose another --workdir")
    lock = lock_workdir(workdir)
    if jax.process_index() == 0:
        for name in existing:
            target = workdir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    return lock


def _flat(cfg):
    """{"a.b": value} of a ConfigDict."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, ml_collections.ConfigDict):
            out.update({f"{key}.{k}": v for k, v in _flat(value).items()})
        else:
            out[key] = value
    return out


def resolve_config(cfg, workdir, resume, defaults=None):
    """The run's config: `cfg` (a loaded config, overrides applied) for a new run; with `resume`, the one saved
    in `workdir` with the changes of `cfg` that RESUMABLE_KEYS allows (a UserError for any other). A key (at
    any depth, e.g. loss.saturation) the configs gained since the run began takes its value in `defaults` (the
    same config file without overrides; by default configs/metastyle.py), or in BEFORE_KEY."""
    cfg.vgg.path = cfg.vgg.path or ""
    if not resume:
        return cfg
    path = Path(workdir) / "config.json"
    if not path.is_file():
        raise UserError(f"--resume: {workdir} holds no run (no config.json)")
    try:
        saved = ml_collections.ConfigDict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"--resume: {path} is damaged ({e}); start a new run in another --workdir") from None
    new, old = _flat(cfg), _flat(saved)
    defaults = _flat(config_lib.load("metastyle") if defaults is None else defaults)
    for key in new.keys() - old.keys():  # a key added to the configs since the run began: its default
        if key in defaults or key in BEFORE_KEY:
            *parents, leaf = key.split(".")
            node = saved
            for p in parents:
                node = node[p] if p in node else node.setdefault(p, ml_collections.ConfigDict())
            node[leaf] = old[key] = BEFORE_KEY.get(key, defaults.get(key))
    changed = sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k) and k not in RESUMABLE_KEYS)
    if changed:
        raise UserError(f"--resume: {', '.join(changed)} differ from the run in {workdir} "
                        f"(only {', '.join(RESUMABLE_KEYS)} may change when resuming)")
    for key in RESUMABLE_KEYS:
        *parents, leaf = key.split(".")
        node_new, node_old = cfg, saved
        for p in parents:
            node_new, node_old = node_new[p], node_old[p]
        node_old[leaf] = node_new[leaf]
    return saved


class Reporter:
    """Progress bar, TensorBoard events, metrics.jsonl and loss_curves.png of a run (process 0 only)."""

    def __init__(self, workdir, cfg, start, active):
        self.workdir, self.cfg, self.active = Path(workdir), cfg, active
        self.history = {k: ([], []) for k in CURVES}
        self.bar = self.writer = None
        if not active:
            return
        from tensorboardX import SummaryWriter
        from tqdm import tqdm

        log = self.workdir / "metrics.jsonl"
        kept = []
        if log.exists():
            kept = [line for line in log.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= start]
            log.write_text("".join(line + "\n" for line in kept))
        for line in kept:
            self._remember(json.loads(line))
        self.writer = SummaryWriter(str(self.workdir / "tb"), purge_step=start + 1 if start else None)
        self.bar = tqdm(total=cfg.num_steps, initial=start, desc="meta-train", unit="it", file=sys.stderr,
                        dynamic_ncols=True, smoothing=0.1)

    def _remember(self, record):
        for key, (xs, ys) in self.history.items():
            if key in record:
                xs.append(record["step"])
                ys.append(record[key])

    def log(self, step, metrics, bar_update=0):
        """Record metrics (floats) of iteration `step` in every sink."""
        if not self.active:
            return
        record = {"step": step, **{k: float(v) for k, v in metrics.items()}, "time": round(time.time(), 3)}
        self._remember(record)
        with open(self.workdir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in metrics.items():
            group = "eval" if key.startswith("eval_") else "train"
            self.writer.add_scalar(f"{group}/{key.removeprefix('eval_')}", float(value), step)
        if "outer_loss" in metrics:
            self.bar.set_postfix(inner=f"{metrics['inner_loss']:.4g}", outer=f"{metrics['outer_loss']:.4g}",
                                 refresh=False)

    def advance(self, n):
        if self.active:
            self.bar.update(n)

    def plot(self):
        """Rewrite loss_curves.png from the history."""
        if not self.active:
            return
        curves = {CURVES[k]: (xs, ys) for k, (xs, ys) in self.history.items() if xs}
        if curves:
            plotting.loss_curves(self.workdir / "loss_curves.png", curves,
                                 title=f"MetaStyle meta-training ({self.cfg.mode}, T={self.cfg.inner_steps})",
                                 xlabel="iteration")

    def note(self, text):
        if self.active:
            self.bar.write(text, file=sys.stderr)

    def close(self):
        if self.active:
            self.bar.close()
            self.writer.close()


def write_samples(path, params, contents, resampling="nearest"):
    """A PNG grid: the fixed contents (top row) above their style-neutral outputs M(I_c; theta)."""
    outputs = np.asarray(transformer.stylize_batch(params, contents, resampling=resampling))
    images.save_image(path, images.grid(list(contents) + list(outputs), nrow=len(contents)))


def start_from_theta(state, spec, vgg_info, resampling="nearest", other_vgg=False):
    """`state` with theta and the iteration of model `spec` (config.init_from) and its fresh Adam state; a
    UserError if theta used other VGG weights (unless `other_vgg`, config.init_other_vgg) or another
    `resampling` (config.resampling)."""
    params, model = checkpoints.load_model(spec, kinds=("theta",))
    trained_with = model.get("vgg") or {}
    if trained_with.get("sha256") != vgg_info["sha256"] and not other_vgg:
        raise UserError(f"init_from {spec}: it was meta-trained with the {trained_with.get('source')} VGG16, this "
                        f"run uses {vgg_info.get('source')}: add --set init_other_vgg=True to change objective")
    if checkpoints.resampling(model) != resampling:
        raise UserError(f"init_from {spec}: its network resamples {checkpoints.resampling(model)!r}, the config "
                        f"{resampling!r}: add --set resampling={checkpoints.resampling(model)}")
    step = int((model.get("settings") or {}).get("iterations") or 0)
    return state.replace(step=jnp.asarray(step, jnp.int32), params=jax.tree_util.tree_map(jnp.asarray, params))


def train_and_evaluate(cfg, workdir, resume=False, force=False, num_devices=None):
    """Algorithm 1: meta-train theta with `cfg` (configs/metastyle.py) in `workdir` (config.json, checkpoints/,
    TensorBoard logs, loss curves, samples, theta/), resuming from its latest intact checkpoint if `resume`,
    on the first `num_devices` devices (all by default). Returns theta (a host pytree).

    Raises UserError for a bad config or workdir, or a full or read-only disk, Diverged on a non-finite loss or
    meta-gradient. A new run that fails so before its first checkpoint leaves nothing (`discard_run`)."""
    check_config(cfg)
    workdir = Path(workdir)
    outputs.check_not_input([workdir], [cfg.data.content, cfg.data.styles, cfg.init_from, cfg.vgg.path])
    created = not workdir.exists()
    lock = prepare_workdir(workdir, resume, force)
    try:
        return meta_train(cfg, workdir, resume, num_devices)
    except Exception as e:  # noqa: BLE001 (re-raised; what is cleaned up or said first depends on its kind)
        refused = outputs.disk_error(e)
        if not (refused or isinstance(e, UserError)):
            raise
        last = last_checkpoint(workdir)
        if last is None and not resume:
            discard_run(workdir, created)
        if refused and last is not None:
            raise UserError(f"{refused}; checkpoint {last} in {workdir / 'checkpoints'} is intact: --resume "
                            "continues from it") from None
        raise
    finally:
        if lock is not None:
            lock.close()  # releases the flock now, not whenever this frame is collected


def last_checkpoint(workdir):
    """The newest committed checkpoint step in `workdir`/checkpoints (Orbax's numbered folders), or None."""
    folder = workdir / "checkpoints"
    steps = [int(p.name) for p in folder.iterdir() if re.fullmatch(r"\d+", p.name)] if folder.is_dir() else []
    return max(steps, default=None)


def discard_run(workdir, created):
    """Delete what a new run wrote in `workdir`, which holds no committed checkpoint (nothing to resume): its
    run files, and the folder with its lock file if the run created it. Process 0 only."""
    if jax.process_index() != 0:
        return
    for name in RUN_FILES + ((LOCK,) if created else ()):
        target = workdir / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    if created and not any(workdir.iterdir()):
        workdir.rmdir()


def select_devices(cfg, num_devices=None):
    """The first `num_devices` local devices (all by default) and their 1-D mesh, checked against `cfg`."""
    devices = jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise UserError(f"--devices {num_devices}: there are {len(devices)} devices")
        devices = devices[:num_devices]
    mesh = parallel.make_mesh(devices)
    try:
        parallel.check_mesh(cfg, mesh)
    except ValueError as e:
        raise UserError(str(e)) from None
    return devices, mesh


def initial_state(cfg, workdir, resume, ckpt, vgg_info):
    """The state a run starts from: its last intact checkpoint (`resume`), else theta of cfg.init_from or a
    fresh init. Writes config.json (process 0) once the disk is known to hold the run. Returns (state on the
    host, its iteration, whether it was restored)."""
    state = outer.init_state(cfg, cfg.seed)
    resumed = resume and ckpt.latest_step() is not None
    state_bytes = sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(parallel.host_tree(state)))
    outputs.check_writable([workdir / "config.json"],  # the checkpoints still to come and theta, about
                           nbytes=(1 if resumed else cfg.keep_checkpoints) * state_bytes + state_bytes // 3)
    if jax.process_index() == 0:
        outputs.write_atomic(workdir / "config.json", lambda f: f.write((cfg.to_json(indent=2) + "\n").encode()))
    if resume and not resumed:
        print(f"note: no checkpoint in {workdir / 'checkpoints'} yet: starting from iteration 0", file=sys.stderr)
    if not resumed:
        if cfg.init_from:
            state = start_from_theta(state, cfg.init_from, vgg_info, cfg.resampling, cfg.init_other_vgg)
        return state, int(state.step), False
    restored, saved_meta, set_aside = ckpt.restore_intact(parallel.host_tree(state), workdir / "damaged_checkpoints")
    for step, reason in set_aside:
        print(f"note: checkpoint {step} cannot be read ({reason}): moved to {workdir / 'damaged_checkpoints'}; "
              f"resuming from checkpoint {int(restored.step)}", file=sys.stderr)
    if saved_meta.get("vgg", {}).get("sha256") != vgg_info["sha256"]:
        raise UserError(f"--resume: the run used VGG weights {saved_meta.get('vgg')}, not {vgg_info}")
    return restored, int(restored.step), True


def compile_step(bilevel, state, batch, hyper, mesh=None):
    """`outer.train_step` compiled for the shapes of (state, batch), refused before it runs if it cannot fit in
    memory: a function (state, batch) -> (state, metrics)."""
    compiled = outer.train_step.lower(bilevel, state, batch, hyper, mesh=mesh).compile()
    checks.check_memory(checks.program_bytes(compiled), "one meta-iteration", "use a smaller data.content_size, "
                        "data.style_size, batch_size or styles_in_parallel")
    return lambda st, b: compiled(bilevel, st, b, hyper)


def iterate(step_fn, state, batches, start, stop, after=None):
    """Algorithm 1's outer loop: for t in [start, stop), (state, metrics) = step_fn(state, next(batches)), then
    `after(t + 1, state, metrics)` with the metrics on the host. Raises Diverged at the first iteration whose
    loss or meta-gradient is not finite. Returns the final state."""
    for t in range(start, stop):
        state, metrics = step_fn(state, next(batches))
        metrics = jax.device_get(metrics)
        if not metrics["finite"]:
            raise Diverged(f"non-finite loss or meta-gradient at iteration {t + 1} (outer loss "
                           f"{float(metrics['outer_loss']):.4g}, inner loss {float(metrics['inner_loss']):.4g})", t + 1)
        if after is not None:
            after(t + 1, state, metrics)
    return state


def periodic_work(cfg, workdir, report, ckpt, evaluate, contents, vgg_info):
    """The `after` of `iterate` for a run: the progress bar, then at their intervals (and at the last
    iteration) the metrics, the held-out loss, samples, curves and checkpoints."""
    lead = jax.process_index() == 0

    def after(it, state, metrics):
        report.advance(1)
        last = it == cfg.num_steps
        if it % cfg.log_every == 0 or last:
            report.log(it, {k: v for k, v in metrics.items() if k != "finite"})
        if cfg.eval_every and (it % cfg.eval_every == 0 or last):
            evaluate(it, state.params)
        if cfg.sample_every and (it % cfg.sample_every == 0 or last) and lead:
            write_samples(workdir / "samples" / f"step_{it:07d}.png", parallel.host_tree(state.params), contents,
                          cfg.resampling)
        if cfg.plot_every and (it % cfg.plot_every == 0 or last):
            report.plot()
        if it % cfg.checkpoint_every == 0 or last:
            ckpt.save(it, parallel.host_tree(state), {"config": cfg.to_dict(), "vgg": vgg_info, "step": it,
                                                  "data": {"seed": cfg.seed, "next_batch": it}}, force=True)

    return after


def meta_train(cfg, workdir, resume, num_devices):
    """The body of `train_and_evaluate`, in the prepared and locked `workdir`."""
    devices, mesh = select_devices(cfg, num_devices)
    vgg = vgg_weights.load_vgg(cfg.vgg.source, cfg.vgg.path or None)
    vgg_info = vgg_weights.describe(vgg)
    source = MetaData(cfg)
    ckpt = checkpoints.TrainCheckpoints(workdir / "checkpoints", interval=cfg.checkpoint_every,
                                        keep=cfg.keep_checkpoints)
    state, start, resumed = initial_state(cfg, workdir, resume, ckpt, vgg_info)
    state = parallel.replicate(state, mesh)
    settings, hyper = meta.settings_from_config(cfg), meta.hyper_from_config(cfg)
    bilevel = meta.Bilevel(parallel.replicate(vgg, mesh), settings)
    evaluation = bilevel.replace(settings=dataclasses.replace(
        settings, styles_in_parallel=cfg.styles_in_parallel or cfg.styles_per_batch))
    eval_batch = parallel.shard_batch(source.eval_batch(), mesh) if cfg.eval_every else None

    report = Reporter(workdir, cfg, start, jax.process_index() == 0)
    dtype_note = onednn.resolve_dtype(cfg.dtype)[1]
    for line in [f"devices: {len(devices)} x {devices[0].device_kind} ({jax.process_count()} process(es)); "
                 f"VGG16: {vgg_info['source']} sha256 {vgg_info['sha256'][:12]}"] + source.describe() + (
                     [dtype_note] if dtype_note else []):
        report.note(line)

    def evaluate(step, params):
        report.log(step, {"eval_outer_loss": float(outer.eval_loss(evaluation, params, eval_batch, step, hyper,
                                                                  mesh=mesh))})

    batches = prefetch.prefetch((parallel.shard_batch(source.batch_at(t), mesh) for t in itertools.count(start)),
                                depth=cfg.data.prefetch)
    after = periodic_work(cfg, workdir, report, ckpt, evaluate, source.sample_contents(), vgg_info)
    t0 = time.perf_counter()
    try:
        if cfg.eval_every and not resumed:
            evaluate(start, state.params)
        if start < cfg.num_steps:
            first = next(batches)
            step_fn = compile_step(bilevel, state, first, hyper, mesh)
            state = iterate(step_fn, state, itertools.chain([first], batches), start, cfg.num_steps, after)
    except Diverged as e:
        last = ckpt.latest_step()
        kept = (f"the last good checkpoint is iteration {last} in {workdir / 'checkpoints'} (continue "
                f"with --resume and lower learning rates, e.g. --set outer_lr=...)" if last
                else "no checkpoint was written before it")
        raise Diverged(f"{e}: stopping; {kept}", e.iteration) from None
    finally:
        report.close()
        batches.close()
        ckpt.close()
    return finish(cfg, workdir, state, vgg_info, start, time.perf_counter() - t0)


def finish(cfg, workdir, state, vgg_info, start, seconds):
    """Write theta/ (process 0) from the final `state` and say how the run went. Returns theta on the host."""
    params, done = parallel.host_tree(state.params), int(parallel.host_tree(state.step))
    if jax.process_index() == 0:
        checkpoints.save_model(workdir / "theta", params, checkpoints.model_meta(
            "theta", vgg=vgg_info, resampling=cfg.resampling, config=cfg.to_dict(), iterations=done), force=True)
    print(f"meta-trained {done - start} iterations in {seconds:.1f} s (compilation included); theta in "
          f"{workdir / 'theta'}, curves in {workdir / 'loss_curves.png'}", file=sys.stderr)
    return params

if __name__ == "__main__":  # python -m metastyle_jax.train: the command line's `train`
    from metastyle_jax import commands

    commands.run("train")
