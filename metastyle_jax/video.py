"""Video style transfer (section 5.3): a video, or a folder of frames, stylized frame by frame.

    python -m metastyle_jax.stylize --model CKPT --video IN.mp4|FRAMES_DIR --out OUT.mp4|FRAMES_DIR

Frames are decoded in a background thread (ffmpeg, through imageio and the imageio-ffmpeg wheel) and
stylized in batches of a fixed size through one compiled function (the last batch is padded); the output
video is H.264 in yuv420p, without audio, at the input's frame rate. yuv420p needs even sides: a frame with
an odd side is padded by one row or column (its last one repeated). Frames folders hold PNG files, read in
natural order (frame_2 before frame_10) and written as frame_000001.png, ...

Temporal consistency: the mean absolute change between consecutive stylized frames (pixels in [0, 1]),
relative to the same figure of the content frames. A ratio near 1 means the stylization adds no flicker
beyond the motion already in the video.
"""

import dataclasses
import errno
import os
import re
import sys
import tempfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from metastyle_jax import color, images, outputs, prefetch, transformer
from metastyle_jax.errors import UserError, WriteError

WRITE_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")
DEFAULT_FOLDER_FPS = 25.0
CRF = 18  # x264 constant rate factor: visually near-lossless


@dataclasses.dataclass
class Source:
    """Frames to stylize: an iterator of uint8 (H, W, 3) arrays, the frame rate, and the frame count if known."""

    frames: object
    fps: float
    count: int | None
    close: object = None


def _natural_key(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def open_source(path, fps=None):
    """Open a video file or a folder of frame images; `fps` overrides the frame rate. UserError if unreadable."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"video not found: {path}")
    if path.is_dir():
        files = sorted(images.list_images(path), key=_natural_key)
        if not files:
            raise UserError(f"no frames (images) found in {path}")
        frames = (images.to_uint8(images.load_image(f)) for f in files)
        return Source(frames, float(fps or DEFAULT_FOLDER_FPS), len(files))
    import imageio.v2 as iio

    try:
        reader = iio.get_reader(str(path), format="FFMPEG")
        meta = reader.get_meta_data()
    except Exception as e:  # imageio and ffmpeg raise OSError, RuntimeError, IndexError, ... for bad files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read the video {path} ({reason}): is it a video file ffmpeg can decode?") from None
    rate = float(fps or meta.get("fps") or DEFAULT_FOLDER_FPS)
    duration = meta.get("duration")
    count = round(duration * float(meta["fps"])) if duration and meta.get("fps") else None
    return Source(_decoded(reader, path), rate, count, reader.close)


def _decoded(reader, path):
    """The frames of an imageio reader; a decoding failure part-way becomes a UserError."""
    frames = iter(reader)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except Exception as e:  # imageio raises RuntimeError, IndexError, OSError, ... for corrupt streams
            raise UserError(f"cannot decode {path} part-way ({type(e).__name__}: {e}): the file is damaged"
                            ) from None
        yield frame


def output_kind(out):
    """"video" or "frames" for --out; UserError for an image or other file name."""
    suffix = Path(out).suffix.lower()
    if suffix in WRITE_SUFFIXES:
        return "video"
    if suffix and not Path(out).is_dir():
        raise UserError(f"--out {out}: give a video file ({', '.join(WRITE_SUFFIXES)}) or a folder for the frames")
    return "frames"


def even(frame):
    """Pad an (H, W, 3) frame by one row/column (its last one repeated) where H or W is odd."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else frame


class _VideoSink:
    """H.264 (yuv420p, CRF 18) written to a temporary file beside `path`, renamed into place on success."""

    def __init__(self, path, fps):
        import imageio.v2 as iio

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent)
        os.close(fd)
        self.writer = iio.get_writer(self.tmp, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                                     macro_block_size=1, quality=None, ffmpeg_params=["-crf", str(CRF)],
                                     ffmpeg_log_level="fatal")  # a failed write is found by reading back

        self.n = 0

    def write(self, frame):
        self.writer.append_data(even(images.to_uint8(frame)))
        self.n += 1

    def finish(self, ok):
        """Close the encoder; keep the file (renamed into place) only if everything succeeded and it reads back
        with every frame (ffmpeg reports a full disk only in its log, and exits as if it had succeeded)."""
        try:
            self.writer.close()
            if ok:
                self._check_complete()
        except Exception:
            ok = False
            raise
        finally:
            if ok:
                os.chmod(self.tmp, 0o644)
                os.replace(self.tmp, self.path)
            elif os.path.exists(self.tmp):
                os.remove(self.tmp)

    def _check_complete(self):
        """UserError (a WriteError where the disk is full) unless the encoded file holds all `n` frames."""
        import imageio.v2 as iio

        try:
            with iio.get_reader(self.tmp, format="FFMPEG") as reader:
                count = reader.count_frames()
        except (OSError, RuntimeError, ValueError):
            count = 0
        if count == self.n:
            return
        if os.statvfs(self.path.parent).f_bavail == 0:
            raise WriteError(self.path, errno.ENOSPC)
        raise UserError(f"ffmpeg could not finish {self.path} ({count} of {self.n} frames read back); "
                        "nothing was kept")


class _FramesSink:
    """PNG frames written into a temporary folder beside `path`, which replaces `path` on success."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._staging = outputs.staging_dir(self.path)
        self.tmp = self._staging.__enter__()
        self.n = 0

    def write(self, frame):
        self.n += 1
        try:
            images.save_image(self.tmp / f"frame_{self.n:06d}.png", frame)
        except WriteError as e:
            raise outputs.disk_error(e, self.path) from None

    def finish(self, ok):
        """Move the frames into place if everything succeeded; remove the temporary folder either way."""
        if ok:
            outputs.replace_dir(self.tmp, self.path)
        self._staging.__exit__(None, None, None)


class TemporalChange:
    """Running mean absolute change between consecutive frames, for content and stylized frames alike."""

    def __init__(self):
        self.prev, self.sums, self.pairs = None, np.zeros(2), 0

    def add(self, content, stylized):
        """Add one (content, stylized) pair of (H, W, 3) float frames in [0, 1]."""
        if self.prev is not None:
            self.sums += [np.mean(np.abs(content - self.prev[0])), np.mean(np.abs(stylized - self.prev[1]))]
            self.pairs += 1
        self.prev = (content, stylized)

    def result(self):
        """{"content_change", "stylized_change", "ratio"}; None where there is no pair or no content motion."""
        if not self.pairs:
            return {"content_change": None, "stylized_change": None, "ratio": None}
        content, styled = self.sums / self.pairs
        return {"content_change": float(content), "stylized_change": float(styled),
                "ratio": float(styled / content) if content > 0 else None}


def _batches(frames, batch_size, size):
    """Float32 frames (resized so the longer side is at most `size`) in lists of `batch_size`; all one shape."""
    batch, shape = [], None
    for i, frame in enumerate(frames):
        x = images.as_float_rgb(frame)
        if size and max(x.shape[:2]) > size:
            x = images.resize(x, max_side=size)
        if shape is None:
            shape = x.shape
        elif x.shape != shape:
            raise UserError(f"frame {i + 1} is {x.shape[1]}x{x.shape[0]}, the first was {shape[1]}x{shape[0]}: "
                            "all frames must have one size")
        batch.append(x)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def stylize_frames(params, frames, batch_size=8, size=None, preserve_color=False, resampling="nearest",
                   phases=None):
    """Yield (content, stylized) float32 (H, W, 3) pairs for an iterable of frames, in order. Every call of
    the compiled network gets `batch_size` frames (a short last batch is padded with its last frame).
    preserve_color: keep each frame's colours, take only the stylized luminance (`color.preserve_color`);
    resampling: the model's; phases: the grid shifts each frame is averaged over (`transformer.PHASES`; None:
    `transformer.DEFAULT_PHASES` of the network)."""
    phases = transformer.phases_for(resampling, phases)
    with prefetch.prefetch(_batches(frames, batch_size, size), depth=2) as batches:
        for batch in batches:
            padded = jnp.stack(batch + [batch[-1]] * (batch_size - len(batch)))
            out = transformer.stylize_batch(params, padded, resampling=resampling, phases=phases)
            out = np.asarray(color.preserve_color(out, padded) if preserve_color else out)
            yield from zip(batch, out[:len(batch)])


def stylize_video(params, src, dst, size=None, batch_size=8, fps=None, force=False, progress=True,
                  preserve_color=False, resampling="nearest", phases=None):
    """Stylize video (or frames folder) `src` into `dst` (a video file by its suffix, else a frames folder);
    `preserve_color`, `resampling` and `phases` as in `stylize_frames`.

    Returns {"frames", "fps", "size": (W, H), "content_change", "stylized_change", "ratio"}.
    """
    kind = output_kind(dst)
    outputs.check([dst], [src], force)
    source = open_source(src, fps)
    change, n, shape, ok, sink = TemporalChange(), 0, None, False, None
    from tqdm import tqdm

    bar = tqdm(total=source.count, desc="stylize video", unit="frame", file=sys.stderr, disable=not progress)
    try:
        sink = _VideoSink(dst, source.fps) if kind == "video" else _FramesSink(dst)
        for content, styled in stylize_frames(params, source.frames, batch_size, size, preserve_color,
                                              resampling, phases):
            sink.write(styled)
            change.add(content, styled)
            n, shape = n + 1, content.shape
            bar.update(1)
        if n == 0:
            raise UserError(f"{src} has no frames")
        ok = True
    except OSError as e:
        raise UserError(f"reading {src} or writing {dst} failed: {e}") from None
    finally:
        bar.close()
        if source.close is not None:
            source.close()
        if sink is not None:
            sink.finish(ok)
    return {"frames": n, "fps": source.fps, "size": (shape[1], shape[0]), **change.result()}


def summary(stats):
    """One line on the temporal consistency of a stylized video."""
    if stats["ratio"] is None:
        detail = "n/a (fewer than two frames, or the content frames never change)"
    else:
        detail = (f"stylized {stats['stylized_change']:.4f}, content {stats['content_change']:.4f}, "
                  f"ratio {stats['ratio']:.2f}")
    return f"temporal change between consecutive frames (mean |frame t - frame t-1|): {detail}"
