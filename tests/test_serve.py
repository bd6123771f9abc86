"""The web page's Flask app through its test client: styles, upload -> stylize -> download, bad uploads,
the upload limit, adaptation jobs, and the command line's one-line errors."""

import hashlib
import io
import json
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from metastyle_jax import checkpoints, config, images, serve, stylize, transformer, vgg_weights
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError
from metastyle_jax.commands import serve as serve_cmd

LIMIT = 200_000  # bytes per upload in these tests
MAX_SIDE = 64


def photo_bytes(size=(96, 72), seed=0, fmt="PNG"):
    """A random colour image file's bytes, `size` = (width, height)."""
    pixels = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def tiny_adaptation(vgg, steps=2, theta=None):
    """An Adaptation of `steps` steps on 4 embedded 32 px crops against a 32 px style, with random VGG weights."""
    cfg = config.load("adapt", [f"num_steps={steps}", "data.content_size=32", "data.style_size=32", "loss.tv=0",
                                "dtype=float32"])
    weights = vgg_weights.VGGWeights(vgg.params, vgg.spec, "random", "0" * 64, "random")
    return serve.Adaptation(cfg, theta, None if theta is None else "theta-ckpt", lambda: weights)


@pytest.fixture(scope="session")
def serve_models(tmp_path_factory):
    """A folder with a random-init 'adapted' model (the style offered), a theta and a broken checkpoint."""
    root = tmp_path_factory.mktemp("serve_models")
    params = transformer.init_params(jax.random.key(11), 16)
    checkpoints.save_model(root / "noise", params, checkpoints.model_meta("adapted", style="noise.png", steps=3))
    checkpoints.save_model(root / "theta", params, checkpoints.model_meta("theta"))
    (root / "broken").mkdir()
    (root / "broken" / "meta.json").write_text("{not json")
    return root, params


@pytest.fixture(scope="session")
def studio(serve_models, random_vgg):
    root, _ = serve_models
    notes = []
    found = serve.find_models(models_dir=root, log=notes.append)
    s = serve.Studio(found, serve.Limits(LIMIT, MAX_SIDE), tiny_adaptation(random_vgg), log=lambda line: None)
    s.notes = notes
    yield s
    s.close()


@pytest.fixture(scope="session")
def client(studio):
    return serve.create_app(studio).test_client()


def upload(client, url, field, content, name, **form):
    return client.post(url, data={field: (io.BytesIO(content), name), **form}, content_type="multipart/form-data")


def test_style_list_offers_adapted_models_and_skips_the_rest(client, studio):
    answer = client.get("/api/styles").get_json()
    assert [(s["id"], s["label"], s["origin"]) for s in answer["styles"]][:1] == [
        ("m0", "noise.png (Johnson et al., 3 steps): noise", "checkpoint")]
    assert answer["max_upload_bytes"] == LIMIT and answer["max_side"] == MAX_SIDE
    assert answer["adapt"] == {"steps": 2, "johnson": True, "theta": None}
    assert any("broken" in n and "not a metastyle-jax model checkpoint" in n for n in studio.notes)
    assert any("theta" in n and "give theta as --theta" in n for n in studio.notes)
    page = client.get("/").get_data(as_text=True)
    assert 'id="photo"' in page and "Johnson et al." in page and "0.2 MB" in page
    assert client.get("/static/app.js").status_code == 200


def test_upload_stylize_download(client, serve_models, tmp_path):
    _, params = serve_models
    content = photo_bytes((96, 72))
    (tmp_path / "same.png").write_bytes(content)
    answer = upload(client, "/api/stylize", "photo", content, "holiday photo.png", style="m0")
    assert answer.status_code == 200, answer.get_json()
    result = answer.get_json()
    assert (result["width"], result["height"]) == (64, 48) and result["name"] == "holiday-photo_noise.png"
    assert result["compiled"] is True
    again = upload(client, "/api/stylize", "photo", content, "again.png", style="m0").get_json()
    assert again["compiled"] is False and again["id"] != result["id"]
    got = client.get(result["download"])
    assert got.status_code == 200 and got.mimetype == "image/png"
    assert got.headers["Content-Disposition"].startswith("attachment") and result["name"] in got.headers[
        "Content-Disposition"]
    downloaded = np.asarray(Image.open(io.BytesIO(got.data)))
    assert downloaded.shape == (48, 64, 3)
    expected = stylize.stylize(params, [images.load_image(tmp_path / "same.png", max_side=MAX_SIDE)])[0]
    np.testing.assert_array_equal(downloaded, np.round(expected * 255).astype(np.uint8))
    inline = client.get(result["url"])
    assert "attachment" not in inline.headers.get("Content-Disposition", "") and inline.data == got.data


@pytest.mark.parametrize("field,content,name,style,status,message", [
    ("photo", b"just some text\n" * 10, "notes.txt", "m0", 400, "notes.txt is not an image file"),
    ("photo", photo_bytes((8, 8)), "tiny.png", "m0", 400, "tiny.png: 8x8 is too small"),
    ("photo", photo_bytes()[:300], "cut.png", "m0", 400, "cut.png is corrupt or truncated"),
    ("photo", photo_bytes(), "ok.png", "nope", 400, "unknown style 'nope'"),
    ("photo", b"", "", "m0", 400, "choose a photo to upload first"),
    ("painting", photo_bytes((80, 80))[:200], "p.png", None, 400, "p.png is corrupt"),
])
def test_bad_uploads_get_one_clear_message(client, field, content, name, style, status, message):
    url = "/api/stylize" if field == "photo" else "/api/adapt"
    answer = upload(client, url, field, content, name, **({"style": style} if style else {}))
    assert answer.status_code == status
    text = answer.get_json()["error"]
    assert message in text and "metastyle-serve-" not in text  # the upload's name, not the temporary path


def test_gray_painting_is_refused(client):
    gray = io.BytesIO()
    Image.new("L", (80, 80), 128).save(gray, format="PNG")
    answer = upload(client, "/api/adapt", "painting", gray.getvalue(), "gray.png")
    assert answer.status_code == 400 and "gray.png is grayscale" in answer.get_json()["error"]


class CountingStream(io.BytesIO):
    """A request body that counts the bytes the server reads from it."""

    read_bytes = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.read_bytes += len(chunk)
        return chunk


def test_too_large_upload_is_refused_before_it_is_read(client):
    body = io.BytesIO()
    boundary = "xyz"
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="big.png"\r\n'
               f"Content-Type: image/png\r\n\r\n".encode())
    body.write(photo_bytes() + b"\0" * (3 * LIMIT))
    body.write(f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="style"\r\n\r\nm0\r\n--{boundary}--\r\n'
               .encode())
    stream = CountingStream(body.getvalue())
    answer = client.post("/api/stylize", input_stream=stream, content_length=len(stream.getvalue()),
                         content_type=f"multipart/form-data; boundary={boundary}")
    assert answer.status_code == 413
    size = len(stream.getvalue()) / 1e6
    assert answer.get_json()["error"].startswith(f"the upload ({size:.3g} MB) is over the limit of 0.2 MB")
    assert stream.read_bytes < LIMIT


def wait_for(client, job_id, timeout=600):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        seen.append((job["state"], job["step"]))
        if job["state"] in ("done", "failed"):
            return job, seen
        time.sleep(0.2)
    raise AssertionError(f"adaptation {job_id} did not finish in {timeout} s: {seen[-1]}")


def test_adapting_to_an_uploaded_painting_adds_a_style(client):
    painting = photo_bytes((80, 80), seed=5)
    answer = upload(client, "/api/adapt", "painting", painting, "my painting.png")
    assert answer.status_code == 200, answer.get_json()
    job, seen = wait_for(client, answer.get_json()["job"])
    assert job["state"] == "done", job["error"]
    assert (job["step"], job["steps"], job["johnson"]) == (2, 2, True) and np.isfinite(job["loss"])
    assert all(step <= 2 for _, step in seen)
    styles = client.get("/api/styles").get_json()["styles"]
    new = next(s for s in styles if s["id"] == job["style"])
    assert new["origin"] == "adapted here" and new["label"] == "my painting.png (Johnson et al., 2 steps)"
    stylized = upload(client, "/api/stylize", "photo", photo_bytes((40, 40)), "p.png", style=job["style"])
    assert stylized.status_code == 200 and (stylized.get_json()["width"], stylized.get_json()["height"]) == (40, 40)
    assert client.get("/api/jobs/nothing").status_code == 404


def test_adapted_models_can_be_saved_and_found_again(tmp_path, serve_models, random_vgg):
    _, params = serve_models
    saved = tmp_path / "saved"
    s = serve.Studio([], serve.Limits(LIMIT, MAX_SIDE), tiny_adaptation(random_vgg, theta=params),
                     save_adapted=saved, log=lambda line: None)
    try:
        path = tmp_path / "wave.png"
        path.write_bytes(photo_bytes((80, 80), seed=7))
        job, _ = wait_for_studio(s, s.start_adaptation(path, "wave.png"))
        assert job["state"] == "done" and job["johnson"] is False
    finally:
        s.close()
    (found,) = serve.find_models(models_dir=saved)
    assert found.label.startswith("wave.png (MetaStyle, 2 steps): wave-")
    assert found.meta["settings"]["style_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for_studio(studio, job_id, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = studio.job(job_id)
        if job["state"] in ("done", "failed"):
            return job, None
        time.sleep(0.2)
    raise AssertionError(f"adaptation {job_id} did not finish in {timeout} s")


def test_find_models_loads_given_models_and_refuses_bad_ones(serve_models, tmp_path):
    root, _ = serve_models
    (style,) = serve.find_models([root / "noise"], root, log=lambda line: None)  # not listed twice
    assert style.params is not None and style.path == str(root / "noise")
    with pytest.raises(UserError, match="'theta' model; this command needs adapted"):
        serve.find_models([root / "theta"])
    with pytest.raises(UserError, match="no such folder"):
        serve.find_models(models_dir=tmp_path / "absent")
    notes = []
    assert serve.find_models(models_dir=tmp_path, log=notes.append) == []
    assert notes == [f"note: no adapted model checkpoints under {tmp_path}"]


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "metastyle_jax.serve", *args], check=False, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args,message", [
    (["--port", "70000"], "--port must be between 0 and 65535"),
    (["--max-side", "8"], "--max-side must be between 16 and 8192 px"),
    (["--models-dir", "/nonexistent/models"], "no such folder"),
    (["--adapt-steps", "0"], "no styles to offer"),
    (["--vgg", "keras"], "--vgg keras needs --vgg-path"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--host", "no.such.host.invalid", "--adapt-steps", "0", "--model", "MODEL"], "not an address of this machine"),
    (["--theta", "/nonexistent/theta"], "model checkpoint not found: /nonexistent/theta"),
    (["--save-adapted", __file__], "is a file, not a folder"),
])
def test_cli_bad_input_is_one_line(args, message, capsys, serve_models):
    args = [str(serve_models[0] / "noise") if a == "MODEL" else a for a in args]
    with pytest.raises(SystemExit) as stop:
        cli.run(serve_cmd.main, args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_a_port_in_use_is_one_clear_error(client):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"127.0.0.1:{port} is in use: pick another with --port"):
            serve.make_server(client.application, "127.0.0.1", port)


def test_cli_errors_print_one_line(serve_models):
    root, _ = serve_models
    out = run_cli("--model", str(root / "theta"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: {root / 'theta'} holds a 'theta' model; this command needs adapted"]


def test_cli_serves_until_interrupted(serve_models):
    root, _ = serve_models
    proc = subprocess.Popen([sys.executable, "-m", "metastyle_jax.serve", "--port", "0", "--models-dir", str(root),
                             "--adapt-steps", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # SIG_IGN under `&`
    try:
        line = proc.stdout.readline()
        assert "1 style(s); serving on http://127.0.0.1:" in line, proc.stderr.read() if not line else line
        url = line.split("serving on ")[1].split()[0]
        import urllib.request
        with urllib.request.urlopen(url + "api/styles", timeout=30) as r:
            assert [s["id"] for s in json.load(r)["styles"]] == ["m0"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0 and proc.stderr.read().strip().splitlines()[-1] == "stopped"


def test_a_very_long_upload_name_is_served_not_a_500(client):
    name = "a" * 300 + ".png"
    answer = upload(client, "/api/stylize", "photo", photo_bytes(), name, style="m0")
    assert answer.status_code == 200, answer.get_json()
    assert len(answer.get_json()["name"]) < 200 and answer.get_json()["name"].endswith("_noise.png")


def test_errors_about_damaged_models_show_no_server_paths(tmp_path, random_vgg):
    params = transformer.init_params(jax.random.key(3), 16)
    checkpoints.save_model(tmp_path / "models" / "cut", params, checkpoints.model_meta("adapted", style="x.png"))
    found = serve.find_models(models_dir=tmp_path / "models", log=lambda line: None)
    for f in (tmp_path / "models" / "cut" / "params").rglob("d/*"):
        f.write_bytes(f.read_bytes()[:100])  # damaged after the server listed it: read on first use
    s = serve.Studio(found, serve.Limits(LIMIT, MAX_SIDE), log=lambda line: None)
    try:
        answer = upload(serve.create_app(s).test_client(), "/api/stylize", "photo", photo_bytes(), "p.png",
                        style=found[0].id)
    finally:
        s.close()
    text = answer.get_json()["error"]
    assert answer.status_code == 400 and "cannot read the parameters in cut" in text
    assert str(tmp_path) not in text and "/" not in text.split("cannot read the parameters in ")[1].split(":")[0]


def test_uploads_are_decoded_and_stylized_one_at_a_time(studio, tmp_path, monkeypatch):
    """Concurrent requests wait for each other: at most one upload is decoded (or stylized) at any moment,
    so the server's peak memory is that of one request."""
    import threading
    import time

    busy, peak, lock = [0], [0], threading.Lock()
    real = images.load_image

    def counting(*args, **kwargs):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.2)
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                busy[0] -= 1

    monkeypatch.setattr(serve.images, "load_image", counting)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"p{i}.png")
        paths[-1].write_bytes(photo_bytes(seed=i))
    threads = [threading.Thread(target=studio.stylize, args=(p, p.name, "m0")) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1


def test_without_flask_the_command_says_which_extra(monkeypatch):
    real = serve_cmd.importlib.util.find_spec
    monkeypatch.setattr(serve_cmd.importlib.util, "find_spec", lambda name, *a: None if name == "flask" else real(name, *a))
    with pytest.raises(UserError, match=r"needs Flask: pip install -e '\.\[serve\]'"):
        serve_cmd.main([])
