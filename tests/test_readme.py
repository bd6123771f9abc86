"""The README's Python API example runs as written (at smaller sizes and in a temporary folder)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"
SMALLER = {'load_style("embedded:wave", 256)': 'load_style("embedded:wave", 64)',
           'ContentData("embedded", "train", 128, seed=0)': 'ContentData("embedded", "train", 32, seed=0)',
           "style, content, 100, batch_size=2)": "style, content, 2, batch_size=2)",
           'max_side=512)': 'max_side=48)'}


def test_the_api_example_runs(tmp_path, monkeypatch):
    block = re.search(r"## The Python API\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    for old, new in SMALLER.items():
        assert old in block, old
        block = block.replace(old, new)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    from metastyle_jax import checkpoints, images

    params, meta = checkpoints.load_model(tmp_path / "runs" / "wave")
    assert meta["kind"] == "adapted" and meta["settings"]["style"] == "wave.jpg"
    out = images.load_image(tmp_path / "astronaut_wave.png", min_side=1)
    assert out.shape == (48, 48, 3) and np.isfinite(out).all()
    assert len(scope["history"]["loss"]) == 2


def test_the_first_command_runs_twice_and_replaces_only_its_own_outputs(tmp_path):
    """The README's first set-up command (after `pip install -e .`, at smaller sizes) run twice in one folder:
    the second run replaces its own outputs and keeps the user's files beside them; a folder of the user's at
    one of its output paths is refused, untouched."""
    import subprocess

    block = re.search(r"## Set-up: two commands\n.*?```bash\n(.*?)\n```", README.read_text(), re.S).group(1)
    command = block.removeprefix("pip install -e . && ")
    for old, new in {"--size 128": "--size 32", "--style-size 256": "--style-size 64", "--steps 100": "--steps 2",
                     "--size 512": "--size 48"}.items():
        assert old in command, old
        command = command.replace(old, new)
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(README.parent), os.environ.get("PYTHONPATH")])))
    run = lambda: subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
    for _ in range(2):
        done = run()
        assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "outputs" / "stylized").glob("*.png"))) == 9
    mine = tmp_path / "outputs" / "stylized" / "my_notes.txt"
    mine.write_text("mine")
    (tmp_path / "outputs" / "starry_night_loss.png").unlink()
    (tmp_path / "outputs" / "starry_night_loss.png").mkdir()  # a folder of the user's at an output path
    (tmp_path / "outputs" / "starry_night_loss.png" / "keep.txt").write_text("mine")
    refused = run()
    assert refused.returncode == 2 and "starry_night_loss.png" in refused.stderr.strip().splitlines()[-1]
    assert mine.read_text() == "mine" and (tmp_path / "outputs" / "starry_night_loss.png" / "keep.txt").exists()
