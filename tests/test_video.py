import re
import subprocess

import numpy as np
import pytest

from metastyle_jax import images, stylize, video
from metastyle_jax.errors import UserError
from metastyle_jax.commands import stylize as stylize_cmd

iio = pytest.importorskip("imageio.v2")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

H, W, N, FPS = 32, 48, 9, 10.0


def _frames(n=N, h=H, w=W):
    """A square moving over a gradient: uint8 (n, h, w, 3)."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w, y / h, 0.5 + 0 * x], axis=2)
    out = []
    for t in range(n):
        f = base.copy()
        f[8:20, 4 + 3 * t:16 + 3 * t] = (1.0, 0.2, 0.1)
        out.append(np.round(f * 255).astype(np.uint8))
    return np.stack(out)


def _probe(path):
    """ffmpeg's description of a file: (fps, has audio)."""
    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                       capture_output=True, text=True)
    fps = float(re.search(r"([\d.]+) fps", r.stderr)[1])
    return fps, "Audio:" in r.stderr


def _read(path):
    with iio.get_reader(str(path), format="FFMPEG") as r:
        return np.stack([f for f in r])  # list(r) would preallocate len(r), infinite for ffmpeg


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "in.mp4"
    with iio.get_writer(str(path), format="FFMPEG", fps=FPS, codec="libx264", macro_block_size=1, quality=None,
                        ffmpeg_params=["-crf", "0"], ffmpeg_log_level="error") as w:
        for f in _frames():
            w.append_data(f)
    return path


def test_video_to_video_frame_by_frame_at_the_input_rate_without_audio(tmp_path, model, clip, theta, capsys):
    out = tmp_path / "out.mp4"
    stylize_cmd.main(["--model", str(model), "--video", str(clip), "--out", str(out), "--batch-size", "4"])
    got = _read(out)
    assert got.shape == (N, H, W, 3)
    assert _probe(out) == (FPS, False)
    decoded = [f / 255.0 for f in _read(clip)]  # the decoded input, stylized one by one as the CLI does
    expected = np.stack(stylize.stylize(theta, decoded))
    # H.264 in yuv420p halves the chroma resolution of the untrained network's noisy output: compare luma, and
    # check that every output frame is closest to its own input frame (order and count kept through batching)
    assert np.mean(np.abs(got.mean(-1) / 255.0 - expected.mean(-1))) < 0.03
    dist = np.abs(got[:, None] / 255.0 - expected[None]).mean(axis=(2, 3, 4))
    assert list(dist.argmin(axis=1)) == list(range(N))
    printed = capsys.readouterr().out
    assert f"stylized {N} frames ({W}x{H}, 10 fps)" in printed
    assert re.search(r"temporal change .*stylized [\d.]+, content [\d.]+, ratio [\d.]+", printed)


def test_frames_folder_in_natural_order_to_frames_folder(tmp_path, model, theta):
    frames = _frames()
    for i, f in enumerate(frames, start=1):  # frame_2 must come before frame_10
        images.save_image(tmp_path / "in" / f"frame_{i}.png", f)
    images.save_image(tmp_path / "in" / "frame_10.png", frames[-1][:, ::-1])
    stylize_cmd.main(["--model", str(model), "--video", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                  "--batch-size", "4"])
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == [f"frame_{i:06d}.png" for i in range(1, N + 2)]
    inputs = list(frames / 255.0) + [frames[-1][:, ::-1] / 255.0]
    expected = stylize.stylize(theta, inputs)
    for path, e in zip(written, expected):
        np.testing.assert_allclose(images.load_image(path), e, atol=0.6 / 255)


def test_frames_folder_to_video_with_fps(tmp_path, model):
    for i, f in enumerate(_frames(5), start=1):
        images.save_image(tmp_path / "in" / f"{i:03d}.png", f)
    stats = video.stylize_video(stylize.load_params(str(model))[0], tmp_path / "in", tmp_path / "o.mkv",
                                batch_size=4, fps=7, progress=False)
    assert stats["frames"] == 5 and stats["fps"] == 7 and stats["size"] == (W, H)
    assert _probe(tmp_path / "o.mkv")[0] == 7 and _read(tmp_path / "o.mkv").shape == (5, H, W, 3)


def test_temporal_change_and_even_padding():
    a, b = np.zeros((4, 6, 3)), np.full((4, 6, 3), 0.5)
    t = video.TemporalChange()
    for c in (a, b, a):
        t.add(c, 0.5 * c)
    assert t.result() == {"content_change": 0.5, "stylized_change": 0.25, "ratio": 0.5}
    still = video.TemporalChange()
    for _ in range(3):
        still.add(a, b)
    assert still.result()["ratio"] is None
    odd = np.arange(3 * 5 * 3).reshape(3, 5, 3)
    padded = video.even(odd)
    assert padded.shape == (4, 6, 3) and np.array_equal(padded[:3, :5], odd) and np.array_equal(padded[3], padded[2])


def _garbage(path):
    path.write_bytes(b"this is not a video" * 20)
    return path


def _mixed_sizes(path):
    images.save_image(path / "a.png", np.zeros((20, 30, 3)))
    images.save_image(path / "b.png", np.zeros((30, 20, 3)))
    return path


@pytest.mark.parametrize("make,out,match", [
    (lambda t: _garbage(t / "bad.mp4"), "o.mp4", "cannot read the video"),
    (lambda t: t / "missing.mp4", "o.mp4", "video not found"),
    (lambda t: (t / "empty").mkdir() or t / "empty", "o.mp4", "no frames"),
    (lambda t: _mixed_sizes(t), "o.mp4", "all frames must have one size"),
    (lambda t: t, "o.png", "give a video file"),
])
def test_bad_input_is_one_clear_error(tmp_path, model, make, out, match):
    src = make(tmp_path)
    with pytest.raises(UserError, match=match):
        stylize_cmd.main(["--model", str(model), "--video", str(src), "--out", str(tmp_path / out)])
    assert not (tmp_path / out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_refuses_to_overwrite_and_needs_one_source(tmp_path, model, clip, capsys):
    (tmp_path / "o.mp4").write_bytes(b"keep")
    with pytest.raises(UserError, match="exists; pass --force"):
        stylize_cmd.main(["--model", str(model), "--video", str(clip), "--out", str(tmp_path / "o.mp4")])
    assert (tmp_path / "o.mp4").read_bytes() == b"keep"
    with pytest.raises(SystemExit) as e:
        stylize_cmd.main(["--video", str(clip), "--content", str(clip), "--out", str(tmp_path / "x.mp4")])
    assert e.value.code == 2 and "not allowed with" in capsys.readouterr().err
