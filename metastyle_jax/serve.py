"""A local web page: upload a photo, pick a style (an adapted checkpoint, or a painting to adapt to), download it.

    python -m metastyle_jax.serve [--port 8000] [--host 127.0.0.1] [--model CKPT ...] [--models-dir DIR]
                                  [--theta THETA] [--adapt-steps 200] [--max-side 1024] [--max-upload-mb 20]

The styles offered are every `--model` (adapted checkpoints) and the adapted checkpoints found under
`--models-dir`. An uploaded painting is adapted to in a background thread (`adapt.adapt` from `--theta`, or
from random initialization, Johnson et al., with a warning on the page) and becomes one more style; the page
polls its progress. Photos are decoded by `images.load_image` (which refuses non-images and decompression
bombs), downscaled to `--max-side` and stylized by `stylize.stylize`'s compiled function. A Flask app served
by werkzeug on 127.0.0.1 unless `--host` says otherwise.
"""

import collections
import dataclasses
import errno
import os
import re
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path

from metastyle_jax import adapt, checkpoints, images, stylize
from metastyle_jax.errors import UserError

WEB = Path(__file__).with_name("web")
UPLOAD_MAX_PIXELS = adapt.STYLE_MAX_PIXELS  # decoding a bigger photo only to downscale it is wasted memory
MAX_RESULTS = 64                            # stylized PNGs kept for download; older ones are deleted
MAX_NAME = 120                              # characters of an upload's file name kept (stem cut, suffix kept)
MAX_PENDING_JOBS = 4                        # adaptations queued or running at once
MB = 1_000_000


class Cancelled(Exception):
    """Raised inside a running adaptation when the server shuts down."""


@dataclasses.dataclass
class Style:
    """One style the page offers: its id, a label, where it came from ("checkpoint" or "adapted here"), the
    checkpoint path (None for one adapted here), its meta.json, and its params once loaded."""

    id: str
    label: str
    origin: str
    path: str | None
    meta: dict
    params: dict | None = None


@dataclasses.dataclass(frozen=True)
class Limits:
    """What an upload may be: at most `max_upload_bytes` per request; photos are downscaled to `max_side`."""

    max_upload_bytes: int = 20 * MB
    max_side: int = 1024
    max_pixels: int = UPLOAD_MAX_PIXELS


@dataclasses.dataclass
class Adaptation:
    """How the page adapts to an uploaded painting: `cfg` the adapt config (configs/adapt.py: steps, lr,
    batch_size, size, style_size, alpha, beta, only_in, content, crop, seed), `theta` the params to start from
    (None: random initialization, Johnson et al.) and `theta_path`, `load_vgg()` -> VGGWeights (called once,
    on the first adaptation), theta's `input_scale` (`adapt.input_scale_of`) and the network's `resampling`
    (theta's, else the config's)."""

    cfg: object
    theta: dict | None
    theta_path: str | None
    load_vgg: object
    input_scale: float = 1.0
    resampling: str = "nearest"


def style_label(meta, path=None):
    """A short name for an adapted model: its style, its steps and where it started, and its folder name."""
    s = meta.get("settings") or {}
    start = "Johnson et al." if meta.get("kind") == "adapted" and not s.get("from_theta") else "MetaStyle"
    parts = [str(s.get("style") or "unknown style")]
    if s.get("steps"):
        parts.append(f"{start}, {s['steps']} steps")
    label = f"{parts[0]} ({parts[1]})" if len(parts) > 1 else parts[0]
    return f"{label}: {Path(path).name}" if path else label


def find_models(models=(), models_dir=None, log=None):
    """Styles of the adapted checkpoints `models` (loaded now: a bad one raises UserError) and of those found
    under `models_dir` (read_meta now, params on first use; other folders are skipped with a note to `log`)."""
    log = log or (lambda line: print(line, file=sys.stderr))
    styles, seen = [], set()
    for path in models:
        params, meta = checkpoints.load_model(path, kinds=("adapted",))
        seen.add(Path(path).resolve())
        styles.append(Style(f"m{len(styles)}", style_label(meta, path), "checkpoint", str(path), meta, params))
    if models_dir is None:
        return styles
    root = Path(models_dir)
    if not root.is_dir():
        raise UserError(f"--models-dir {root}: {'not a folder' if root.exists() else 'no such folder'}")
    for folder, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))  # skip save_model's temporary folders
        if "meta.json" not in files:
            continue
        subdirs[:] = []
        path = Path(folder)
        if path.resolve() in seen:
            continue
        try:
            meta = checkpoints.read_meta(path)
        except UserError as e:
            log(f"note: skipping {path}: {e}")
            continue
        if meta.get("kind") != "adapted" or meta.get("arch") not in checkpoints.ARCHS:
            log(f"note: skipping {path}: a {meta.get('kind')!r} {meta.get('arch')} model, not an adapted "
                f"metastyle-jax network" + (" (give theta as --theta)" if meta.get("kind") == "theta" else ""))
            continue
        styles.append(Style(f"m{len(styles)}", style_label(meta, path), "checkpoint", str(path), meta))
    if len(styles) == len(models):
        log(f"note: no adapted model checkpoints under {root}")
    return styles


def _slug(text):
    """`text` reduced to [A-Za-z0-9_-] for file names."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(str(text)).stem).strip("-") or "image"


class Studio:
    """The server's state: the styles, the adaptation jobs and the stylized PNGs (in a private temporary folder).

    Methods raise UserError with a message for the page; they are safe to call from several request threads.
    """

    def __init__(self, styles, limits=Limits(), adaptation=None, save_adapted=None, log=None):
        self.limits, self.adaptation, self.save_adapted = limits, adaptation, save_adapted
        self.log = log or (lambda line: print(line, file=sys.stderr))
        self._styles = {s.id: s for s in styles}
        self._jobs, self._results = {}, collections.OrderedDict()
        self._lock, self._compute, self._adapting = threading.Lock(), threading.Lock(), threading.Lock()
        self._stop = threading.Event()
        self._vgg, self._content, self._shapes = None, None, set()
        self._folder = tempfile.TemporaryDirectory(prefix="metastyle-serve-")
        self.folder = Path(self._folder.name)

    def styles(self):
        """[{id, label, origin, style, steps, johnson}] in the order they were added."""
        with self._lock:
            found = list(self._styles.values())
        out = []
        for s in found:
            settings = s.meta.get("settings") or {}
            out.append({"id": s.id, "label": s.label, "origin": s.origin, "style": settings.get("style"),
                        "steps": settings.get("steps"), "johnson": not settings.get("from_theta")})
        return out

    def settings(self):
        """What the page needs to know: the upload limit, the processed size and the adaptation settings."""
        a = self.adaptation
        return {"max_upload_bytes": self.limits.max_upload_bytes, "max_side": self.limits.max_side,
                "adapt": None if a is None else {"steps": int(a.cfg.num_steps), "johnson": a.theta is None,
                                                  "theta": a.theta_path}}

    def _params(self, style_id):
        """The params of style `style_id`, loading its checkpoint on first use."""
        with self._lock:
            style = self._styles.get(style_id)
            if style is None:
                raise UserError(f"unknown style {style_id!r}: pick one from the list (reload the page if the "
                                "server was restarted)")
            if style.params is None:  # a damaged file's error reaches the page through public()
                style.params = checkpoints.load_model(style.path, kinds=("adapted",))[0]
            return style

    def public(self, message):
        """`message` with the server's folders left out: each model's folder by its name, the upload folder,
        the working directory and the home directory, so that no absolute path of the server reaches the page."""
        with self._lock:
            folders = {str(Path(s.path).parent) for s in self._styles.values() if s.path}
        for folder in sorted(folders | {str(self.folder), os.getcwd()}, key=len, reverse=True):
            message = message.replace(folder.rstrip(os.sep) + os.sep, "")
        return message.replace(str(Path.home()), "~")

    def stylize(self, photo_path, display_name, style_id):
        """Stylize the image file `photo_path` (downscaled to max_side) with style `style_id`; the PNG is kept
        for download. Returns {id, url, download, name, width, height, seconds, compiled (True when the time
        includes compiling the network for this image size), style}."""
        style = self._params(style_id)
        with self._compute:  # one upload decoded and stylized at a time: the peak memory is one request's
            image = _named(display_name, photo_path, lambda: images.load_image(
                photo_path, max_side=self.limits.max_side, max_pixels=self.limits.max_pixels))
            first = image.shape not in self._shapes
            t0 = time.perf_counter()
            result = stylize.stylize(style.params, [image], resampling=checkpoints.resampling(style.meta))[0]
            seconds = time.perf_counter() - t0
            self._shapes.add(image.shape)
        rid = uuid.uuid4().hex
        path = self.folder / f"{rid}.png"
        images.save_image(path, result)
        name = f"{_slug(display_name)}_{_slug(style.meta.get('settings', {}).get('style') or style.id)}.png"
        with self._lock:
            self._results[rid] = (path, name)
            while len(self._results) > MAX_RESULTS:
                old, _ = self._results.popitem(last=False)[1]
                old.unlink(missing_ok=True)
        self.log(f"stylized {display_name} ({image.shape[1]}x{image.shape[0]}) with {style.label} in {seconds:.2f} s")
        return {"id": rid, "url": f"/results/{rid}.png", "download": f"/results/{rid}.png?download=1", "name": name,
                "width": int(image.shape[1]), "height": int(image.shape[0]), "seconds": round(seconds, 3),
                "compiled": first, "style": style.label}

    def result(self, rid):
        """(path, download name) of a stylized PNG; UserError if it is unknown or was deleted."""
        with self._lock:
            found = self._results.get(rid)
        if found is None or not found[0].exists():
            raise UserError("this result is no longer kept on the server: stylize the photo again")
        return found

    def start_adaptation(self, painting_path, display_name):
        """Check the painting now (a UserError for a bad one), then adapt to it in a background thread.
        Returns the job id; `job(id)` reports its progress."""
        a = self.adaptation
        if a is None:
            raise UserError("adaptation is switched off on this server (--adapt-steps 0)")
        style, _, digest = _named(display_name, painting_path,
                                  lambda: adapt.load_style(painting_path, int(a.cfg.data.style_size)))
        with self._lock:
            pending = sum(j["state"] in ("queued", "running") for j in self._jobs.values())
            if pending >= MAX_PENDING_JOBS:
                raise UserError(f"{pending} adaptations are already queued: wait for one to finish")
            jid = uuid.uuid4().hex[:12]
            self._jobs[jid] = {"id": jid, "state": "queued", "name": display_name, "step": 0,
                               "steps": int(a.cfg.num_steps), "loss": None, "error": None, "style": None,
                               "johnson": a.theta is None, "seconds": None}
        threading.Thread(target=self._adaptation_job, args=(jid, style, display_name, digest), daemon=True,
                         name=f"adapt-{jid}").start()
        return jid

    def job(self, jid):
        """A copy of job `jid`'s state: {id, state (queued|running|done|failed), name, step, steps, loss, error,
        style (the new style's id once done), johnson, seconds}."""
        with self._lock:
            if jid not in self._jobs:
                raise UserError(f"unknown adaptation {jid!r}")
            return dict(self._jobs[jid])

    def _update(self, jid, **fields):
        with self._lock:
            self._jobs[jid].update(fields)

    def _adaptation_job(self, jid, style, display_name, digest):
        """The background thread of one adaptation: queue behind others, run `adapt.adapt`, add the style."""
        from tqdm import tqdm

        with self._adapting:
            if self._stop.is_set():
                return self._update(jid, state="failed", error="the server is shutting down")
            self._update(jid, state="running")
            a, t0 = self.adaptation, time.perf_counter()
            bar = tqdm(total=int(a.cfg.num_steps), desc=f"adapt {display_name}", unit="step", file=sys.stderr)

            def progress(step, loss):
                if self._stop.is_set():
                    raise Cancelled
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}")
                self._update(jid, step=step, loss=float(loss))

            try:
                params, meta = self._adapted_model(style, display_name, digest, progress)
            except Cancelled:
                return self._update(jid, state="failed", error="the server is shutting down")
            except UserError as e:
                return self._update(jid, state="failed", error=self.public(str(e)))
            except Exception as e:  # noqa: BLE001 -- shown on the page; the traceback goes to the console
                traceback.print_exc()
                return self._update(jid, state="failed", error=f"adaptation failed: {type(e).__name__}: {e}")
            finally:
                bar.close()
            seconds = time.perf_counter() - t0
            meta["settings"]["seconds"] = round(seconds, 3)
            with self._lock:
                sid = f"a{sum(s.origin == 'adapted here' for s in self._styles.values())}"
                self._styles[sid] = Style(sid, style_label(meta), "adapted here", None, meta, params)
            self.log(f"adapted to {display_name} in {seconds:.1f} s ({a.cfg.num_steps} steps)")
            if self.save_adapted is not None:
                self._save(params, meta, display_name, jid)
            self._update(jid, state="done", style=sid, seconds=round(seconds, 1))

    def _adapted_model(self, style, display_name, digest, progress):
        """`adapt.adapt_model` to the (S, S, 3) style from theta (or random init): (params, meta of an adapted
        model)."""
        import jax

        from metastyle_jax import transformer

        a = self.adaptation
        cfg = a.cfg
        if self._vgg is None:
            self._vgg = a.load_vgg()
        if self._content is None:
            self._content = adapt.content_data(cfg)
        start = a.theta if a.theta is not None else transformer.init_params(jax.random.key(cfg.seed), 16)
        params, meta, _ = adapt.adapt_model(cfg, start, self._vgg, style, self._content, style_name=display_name,
                                            style_sha256=digest, from_theta=a.theta_path,
                                            input_scale=a.input_scale, progress=progress, resampling=a.resampling)
        return params, meta

    def _save(self, params, meta, display_name, jid):
        """Write an adapted model under --save-adapted as <painting>-<job id> (never replacing a folder)."""
        path = Path(self.save_adapted) / f"{_slug(display_name)}-{jid}"
        try:
            checkpoints.save_model(path.absolute(), params, meta)
            self.log(f"saved the adapted model -> {path}")
        except (UserError, OSError) as e:
            self.log(f"warning: could not save the adapted model to {path}: {e}")

    def close(self):
        """Stop running adaptations at their next step and delete the stylized PNGs."""
        self._stop.set()
        self._folder.cleanup()


def _named(display_name, path, load):
    """`load()`, with the temporary `path` in a UserError's message replaced by the upload's name."""
    try:
        return load()
    except UserError as e:
        raise UserError(str(e).replace(str(path), display_name)) from None


def _json_error(message, status=400):
    """A JSON error reply: {"error": message} with HTTP `status`."""
    import flask

    return flask.jsonify(error=message), status


def _with_upload(studio, field, what, work):
    """Save the request's uploaded file `field` in a temporary folder of `studio` and return `work(path, its
    name)`; a UserError asking for a `what` when none was sent."""
    import flask
    from werkzeug.utils import secure_filename

    upload = flask.request.files.get(field)
    if upload is None or not upload.filename:
        raise UserError(f"choose a {what} to upload first")
    name = os.path.basename(upload.filename.replace("\\", "/"))
    if len(name) > MAX_NAME:  # the page shows it; the file system takes at most 255 bytes
        stem, suffix = os.path.splitext(name)
        name = stem[:MAX_NAME - len(suffix[:16]) - 1] + "~" + suffix[:16]
    with tempfile.TemporaryDirectory(dir=studio.folder) as folder:
        path = Path(folder) / (secure_filename(name) or "upload")
        upload.save(path)
        return work(path, name)


def _add_error_handlers(app, studio):
    """A user's mistake and an upload over the limit become JSON errors (400, 413)."""
    import flask
    from werkzeug.exceptions import RequestEntityTooLarge

    @app.errorhandler(UserError)
    def user_error(e):
        return _json_error(studio.public(str(e)))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(e):
        size = flask.request.content_length
        got = f" ({size / MB:.3g} MB)" if size else ""
        return _json_error(f"the upload{got} is over the limit of {studio.limits.max_upload_bytes / MB:g} MB: "
                           "choose a smaller file", 413)


def create_app(studio):
    """The Flask app of `studio`: the page (/), its JSON API (/api/...) and the stylized PNGs (/results/ID.png)."""
    import flask

    app = flask.Flask(__name__, template_folder=str(WEB), static_folder=str(WEB / "static"))
    app.config["MAX_CONTENT_LENGTH"] = studio.limits.max_upload_bytes
    _add_error_handlers(app, studio)

    @app.get("/")
    def page():
        return flask.render_template("index.html", settings=studio.settings())

    @app.get("/api/styles")
    def styles():
        return flask.jsonify(styles=studio.styles(), **studio.settings())

    @app.post("/api/stylize")
    def stylize_photo():
        style_id = flask.request.form.get("style", "")
        return flask.jsonify(_with_upload(studio, "photo", "photo", lambda p, n: studio.stylize(p, n, style_id)))

    @app.post("/api/adapt")
    def adapt_painting():
        return flask.jsonify(job=_with_upload(studio, "painting", "painting", studio.start_adaptation))

    @app.get("/api/jobs/<jid>")
    def job(jid):
        try:
            return flask.jsonify(studio.job(jid))
        except UserError as e:
            return _json_error(str(e), 404)

    @app.get("/results/<rid>.png")
    def result(rid):
        try:
            path, name = studio.result(rid)
        except UserError as e:
            return _json_error(str(e), 404)
        download = flask.request.args.get("download") == "1"
        return flask.send_file(path, mimetype="image/png", as_attachment=download, download_name=name,
                               max_age=0)

    return app


def make_server(app, host="127.0.0.1", port=8000):
    """A threaded werkzeug server for `app` on host:port (port 0: a free one; `.port` says which).

    The socket is bound here, so a port in use or an unknown host is a UserError (werkzeug would exit).
    """
    from werkzeug.serving import get_sockaddr, select_address_family
    from werkzeug.serving import make_server as werkzeug_server

    family = select_address_family(host, port)
    try:
        sock = socket.create_server(get_sockaddr(host, port, family), family=family, backlog=128)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"{host}:{port} is in use: pick another with --port") from None
        if e.errno == errno.EADDRNOTAVAIL or (e.errno or 0) < 0:  # negative: getaddrinfo found no such host
            raise UserError(f"--host {host}: not an address of this machine") from None
        raise UserError(f"{host}:{port} cannot be opened ({e.strerror or e})") from None
    with sock:  # werkzeug serves a duplicate of it
        return werkzeug_server(host, port, app, threaded=True, fd=sock.fileno())


if __name__ == "__main__":  # python -m metastyle_jax.serve: the command line's `serve`
    from metastyle_jax import commands

    commands.run("serve")
