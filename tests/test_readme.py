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
