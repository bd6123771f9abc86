"""Ship a meta-training run's theta in the package, its convolution kernels in float16, with its card.

    python -m benchmarks.ship_theta --workdir runs/theta64 [--step N] [--out metastyle_jax/models/theta]

Reads the run's training checkpoint (default: its latest), stores theta's parameters `compact`ly (half the
bytes; `checkpoints.load_model` widens them back to float32) with a meta.json that carries the card: the
config, the iteration, the run's wall time, the machine, the VGG16 source and hash, the training styles (from
the manifest of the style folder) and the content photos (SOURCES.txt of the content folder). Measures
the largest change of the stylized output that float16 storage causes on the embedded photos at 256 px.

A campaign runs over several sessions, each a phase that continues from the shipped theta (`init_from`).
Each phase's metrics.jsonl is kept in benchmarks/results/theta_campaign/ (a few kB; runs/ is not committed)
with the phase's iterations, wall time and learning rate in phases.json, so the card and
docs/theta_loss_curves.png cover the whole campaign. Writes docs/theta_card.md.
"""

import datetime
import functools
import json
import os
import platform
from pathlib import Path

import jax
import ml_collections
import numpy as np

from metastyle_jax import checkpoints, data, images, outer, parallel, plotting, train, transformer
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError

DOCS = Path(__file__).resolve().parents[1] / "docs"
CAMPAIGN = Path(__file__).resolve().parent / "results" / "theta_campaign"


def run_seconds(workdir, end, since=0.0):
    """Wall time of the run's launches that began after `since` up to `end` (UNIX times), in seconds: each launch
    writes one TensorBoard event file, named after its start, last written at its end."""
    events = [p for p in (Path(workdir) / "tb").glob("events.out.tfevents.*") if int(p.name.split(".")[3]) >= since]
    spans = [(int(p.name.split(".")[3]), min(p.stat().st_mtime, end)) for p in events]
    return round(sum(max(0.0, stop - start) for start, stop in spans)) if spans else None


def checkpoint_time(step_dir):
    """The last write of a checkpoint folder (a UNIX time)."""
    return max(p.stat().st_mtime for p in Path(step_dir).rglob("*") if p.is_file())


def metrics_time(workdir, step):
    """The wall-clock time of a run's last metrics record at or before iteration `step` (a UNIX time), for a run
    whose checkpoint of that iteration is gone."""
    records = [json.loads(x) for x in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    return max(r["time"] for r in records if r["step"] <= step)


def read_config(workdir):
    """A meta-training run's config (config.json); a UserError if the folder is not a run."""
    try:
        return ml_collections.ConfigDict(json.loads((Path(workdir) / "config.json").read_text()))
    except (OSError, ValueError) as e:
        raise UserError(f"{workdir} is not a meta-training run folder (config.json: {e})") from None


def training_styles(folder):
    """[(file, artist, title, year)] from the manifest.json of a style folder ([] where there is none)."""
    manifest = Path(folder) / "manifest.json"
    if not manifest.is_file():
        return []
    return [(m["file"], m["artist"], m["title"], m["year"]) for m in json.loads(manifest.read_text())["images"]]


def content_sources(folder):
    """The lines of SOURCES.txt (benchmarks/get_photos.sh) of a content folder ([] where there is none)."""
    sources = Path(folder) / "SOURCES.txt"
    return sources.read_text().splitlines() if sources.is_file() else []


def compact(params):
    """The shipped storage of transformer params: the convolution kernels (99.7% of the numbers) as float16, the
    biases and instance-norm scales and shifts (4,803 numbers) as float32. Rounding those too moved the output
    of the adapted The Scream by 1.02/255, against 0.45/255 with them kept."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: np.asarray(x, np.float16 if path[-1].key == "kernel" else np.float32), params)


def half_ulp_moved(params, rng, which=lambda path: True):
    """`params` with each weight that `which(path)` selects moved by half a float16 ulp of itself (the largest
    rounding error of float16 storage), random signs from the numpy Generator `rng`."""
    def moved(path, x):
        if not which(path):
            return x
        ulp = np.spacing(np.abs(x).astype(np.float16)).astype(np.float32)
        return x + 0.5 * ulp * rng.choice([-1.0, 1.0], size=x.shape).astype(np.float32)
    return jax.tree_util.tree_map_with_path(moved, params)


def float16_change(params, resampling="nearest", stored=None):
    """Largest |M(x; params) - M(x; stored)| over the embedded photos at 256 px, in [0, 1] units (`resampling`: the
    network's); `stored`: compact(params), widened back to float32, where None."""
    half = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), compact(params) if stored is None else stored)
    photos = np.stack([images.resize(images.as_float_rgb(data.skimage_image(n)), (256, 256))
                       for n in data.EMBEDDED_PHOTOS]).astype(np.float32)
    run = functools.partial(transformer.stylize_batch, resampling=resampling)
    return float(np.abs(np.asarray(run(params, photos)) - np.asarray(run(half, photos))).max())


def record_phase(workdir, cfg, step, seconds, shipped_meta, campaign=None, start=None):
    """Append this run to the `campaign` folder's phases.json (seeded from the shipped theta's card if the file
    is new and the shipped theta came from the same campaign) and keep its metrics as
    metrics_<first>-<step>.jsonl (default folder: CAMPAIGN); returns the list of phases. A phase replaces one
    with the same first iteration; `start`: the phase began at that iteration of a run folder that an earlier
    phase had shipped from (its metrics after `start` only), else it is the whole run."""
    campaign = campaign or CAMPAIGN
    campaign.mkdir(parents=True, exist_ok=True)
    index = campaign / "phases.json"
    phases = json.loads(index.read_text()) if index.is_file() else []
    card = (shipped_meta or {}).get("settings", {}).get("card", {})
    same = shipped_meta and card.get("campaign", CAMPAIGN.name) == campaign.name
    if not phases and same:  # the phase before this record existed: from the shipped theta's card
        card = shipped_meta["settings"].get("card", {})
        phases.append({"first": 0, "last": card.get("iterations"), "seconds": card.get("run_seconds"),
                       "outer_lr": shipped_meta["settings"]["config"]["outer_lr"], "metrics": None})
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()] \
        if (workdir / "metrics.jsonl").is_file() else []
    lines = [m for m in lines if (start is None or m["step"] > start) and m["step"] <= step]
    first = start if start is not None else min((m["step"] for m in lines), default=step)
    name = f"metrics_{first}-{step}.jsonl"
    (campaign / name).write_text("".join(json.dumps(m) + "\n" for m in lines))
    phases = [ph for ph in phases if ph["first"] != first] + [
        {"first": first, "last": int(step), "seconds": seconds, "outer_lr": cfg.outer_lr,
         "content_size": cfg.data.content_size, "dtype": cfg.get("dtype", "float32"),
         "vgg": cfg.get("vgg", {}).get("source", "hed"), "metrics": name}]
    index.write_text(json.dumps(phases, indent=2) + "\n")
    return phases


def campaign_curves(phases, path, campaign=None):
    """The outer loss (training batches and the fixed evaluation batch) over every recorded phase, as a PNG;
    one pair of curves per image size and loss network (losses of different sizes or networks are not comparable;
    the network is named where the phases differ in it, a phase recorded without one was HED's)."""
    campaign, series = campaign or CAMPAIGN, {}
    networks = {ph.get("vgg", "hed") for ph in phases if ph["metrics"]}
    for ph in phases:
        if not ph["metrics"]:
            continue
        size = ph.get("content_size", 64)
        network = f", {ph.get('vgg', 'hed')} VGG16" if len(networks) > 1 else ""
        for m in map(json.loads, (campaign / ph["metrics"]).read_text().splitlines()):
            for key, what in (("outer_loss", "training batch"), ("eval_outer_loss", "fixed evaluation batch")):
                if key in m:
                    series.setdefault(f"outer loss, {what}, {size} px{network}", []).append((m["step"], m[key]))
    curves = {name: tuple(zip(*sorted(pts))) for name, pts in series.items()}
    plotting.loss_curves(path, curves, title="meta-training of the shipped theta", xlabel="iteration")


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m benchmarks.ship_theta", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="the meta-training run folder")
    p.add_argument("--step", type=int, help="the checkpoint's iteration (default: the latest)")
    p.add_argument("--out", default=str(checkpoints.MODELS_DIR / "theta"), help="model directory to write")
    p.add_argument("--campaign", default=CAMPAIGN.name, help="the folder under benchmarks/results that keeps "
                   "the campaign's phases and metrics (default theta_campaign; metastyle:cpu2 uses theta2_campaign)")
    p.add_argument("--phase-start", type=int, help="the iteration this phase began at, where the run folder also "
                   "made the shipped theta (a run kept across sessions): its metrics and launches after that only")
    p.add_argument("--continues", metavar="RUN:STEP", help="this run began from iteration STEP of run folder RUN "
                   "(`init_from`): record that run's phase up to STEP first, in a new campaign folder")
    p.add_argument("--model", metavar="DIR", help="ship this --export-only model of the run's iteration --step "
                   "instead of its checkpoint (one the run no longer keeps); the float16 change is then estimated")
    p.add_argument("--export-only", action="store_true", help="write the model to --out and nothing else (no card, "
                   "no campaign record): to judge a running campaign's checkpoint")
    args = p.parse_args(argv)

    workdir = Path(args.workdir)
    cfg = read_config(workdir)
    resampling = cfg.get("resampling", train.BEFORE_KEY["resampling"])  # a run from before the key: nearest
    if args.model:
        step, params, vgg, end = exported(args.model, workdir, cfg, args.step)
    else:
        ckpt = checkpoints.TrainCheckpoints(workdir / "checkpoints")
        step = args.step if args.step is not None else ckpt.latest_step()
        if step is None:
            raise UserError(f"no checkpoint in {workdir / 'checkpoints'}")
        state, saved = ckpt.restore(parallel.host_tree(outer.init_state(cfg, cfg.seed)), step)
        ckpt.close()
        params, vgg, end = parallel.host_tree(state.params), saved["vgg"], checkpoint_time(ckpt.directory / str(step))
    if args.export_only:
        meta = checkpoints.model_meta("theta", vgg=vgg, resampling=resampling, config=cfg.to_dict(),
                                      iterations=int(step))
        print(f"theta of iteration {step} -> {checkpoints.save_model(args.out, compact(params), meta, force=True)}")
        return
    is_kernel = lambda path: path[-1].key == "kernel"  # noqa: E731
    change = float16_change(params, resampling, half_ulp_moved(params, np.random.default_rng(0), is_kernel)
                            if args.model else None)
    shipped = checkpoints.read_meta(args.out) if (Path(args.out) / "meta.json").is_file() else None
    since = datetime.datetime.fromisoformat(shipped["created"]).timestamp() \
        if shipped and args.phase_start is not None else 0.0
    seconds = run_seconds(workdir, end, since)  # since the last shipping
    campaign = CAMPAIGN.parent / args.campaign
    if args.continues:
        before, _, before_step = args.continues.rpartition(":")
        if not before or not before_step.isdigit():
            raise UserError(f"--continues {args.continues}: expected RUN:STEP")
        before_step = int(before_step)
        record_phase(Path(before), read_config(before), before_step,
                     run_seconds(before, metrics_time(before, before_step)), None, campaign)
    phases = record_phase(workdir, cfg, step, seconds, shipped, campaign, args.phase_start)
    card = {
        "iterations": int(step), "run_seconds": sum(ph["seconds"] or 0 for ph in phases), "phases": phases,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {jax.devices()[0].device_kind}",
        "jax": jax.__version__, "training_styles": training_styles(cfg.data.styles),
        "content": content_sources(cfg.data.content), "float16_max_output_change": change,
        "float16_change_from": "an export: its kernels moved by half a float16 ulp, random signs (an estimate)"
        if args.model else "the float32 checkpoint",
        "shipped": datetime.date.today().isoformat(), "campaign": campaign.name,
    }
    model_meta = checkpoints.model_meta("theta", vgg=vgg, resampling=resampling, config=cfg.to_dict(),
                                        iterations=int(step), card=card)
    out = checkpoints.save_model(args.out, compact(params), model_meta, force=True)
    campaign_curves(phases, DOCS / "theta_loss_curves.png", campaign)
    write_card(DOCS / "theta_card.md", cfg, vgg, card)
    print(f"theta of iteration {step} -> {out} (float16 kernels; largest output change {change * 255:.3f}/255, "
          f"from {card['float16_change_from']}); card in {DOCS / 'theta_card.md'}")


def exported(model, workdir, cfg, step):
    """(step, params, vgg description, end time) of an --export-only `model` of the run at `workdir` (config `cfg`);
    a UserError unless it is that run's iteration `step`."""
    if step is None:
        raise UserError("--model needs --step, the iteration it was exported at")
    params, meta = checkpoints.load_model(model, kinds=("theta",))
    settings = meta["settings"]
    if settings.get("iterations") != step or settings.get("config") != json.loads(json.dumps(cfg.to_dict())):
        raise UserError(f"{model} is not iteration {step} of the run {workdir} (its meta.json says iteration "
                        f"{settings.get('iterations')})")
    return step, params, meta["vgg"], metrics_time(workdir, step)


def write_card(path, cfg, vgg, card):
    """The model card of the shipped theta, as Markdown."""
    hours = f"{card['run_seconds'] / 3600:.2f} h" if card["run_seconds"] else "unknown"
    lines = [
        "# The shipped theta", "",
        "`metastyle_jax/models/theta`, loadable as `--model theta`. Written by `python -m benchmarks.ship_theta` "
        "from a meta-training run; every figure below comes from that run.", "",
        f"- iterations: {card['iterations']:,}; wall time of the campaign: {hours}; machine: {card['machine']}; "
        f"jax {card['jax']}",
        "- phases (each continues from the one before: from its run's checkpoint where the run folder was kept, "
        "else from the shipped theta with a fresh Adam warmed up over `outer_warmup` updates): " + "; ".join(
            f"iterations {ph['first']}-{ph['last']} at {ph.get('content_size', 64)} px, outer lr {ph['outer_lr']:g}, "
            f"{ph.get('dtype', 'float32')} convolutions, "
            f"{(ph['seconds'] or 0) / 3600:.2f} h" for ph in card["phases"]),
        f"- settings: {cfg.mode}, T={cfg.inner_steps}, inner SGD lr {cfg.inner_lr} on {cfg.inner_params}, "
        f"outer Adam on {cfg.outer_params}, decay {cfg.lr_decay}, alpha {cfg.loss.alpha}, "
        f"beta {cfg.loss.beta}, total variation {cfg.loss.get('tv', 0.0)}, {cfg.styles_per_batch} styles x "
        f"{cfg.batch_size} contents, {cfg.data.content_size} px content (zoomed up to {cfg.data.get('zoom', 1)}x), "
        f"{cfg.data.style_size} px styles, {cfg.get('resampling', 'nearest')} resampling, seed {cfg.seed} "
        "(configs/metastyle.py's `cpu*` variants name every deviation from the paper)",
        f"- VGG16: {vgg['source']} (sha256 {vgg['sha256']})" + (
            "; the HED backbone is a stand-in for ImageNet VGG16" if vgg["source"] == "hed" else
            f", layer factors {', '.join(f'{w:.4g}' for w in vgg.get('layer_weights', ()))}"),
        "- stored with float16 convolution kernels: the stylized output of the embedded photos at 256 px moves by "
        f"at most {card['float16_max_output_change'] * 255:.3f}/255 (measured from "
        f"{card.get('float16_change_from', 'the float32 checkpoint')})",
        "- held out: the five shipped paintings (metastyle_jax/paintings) were never shown to meta-training", "",
        "![loss curves](theta_loss_curves.png)", "",
        f"The curves cover the phases whose metrics were kept (benchmarks/results/{card['campaign']}/).", "",
        f"## Training styles ({len(card['training_styles'])}, from the manifest of `{cfg.data.styles}`)", "",
        "| file | artist | title | year |", "| --- | --- | --- | --- |",
        *[f"| {f} | {a} | {t} | {y} |" for f, a, t, y in card["training_styles"]], "",
        f"## Content photos ({len(card['content'])}, `{cfg.data.content}`, made by benchmarks/get_photos.sh)", "",
        *[f"- {line}" for line in card["content"]], "",
    ]
    Path(path).write_text("\n".join(lines))


if __name__ == "__main__":
    cli.run(main)
