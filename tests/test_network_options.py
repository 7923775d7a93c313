"""The manifest's `model` speed options reach the worker's network and leave the render intact."""
import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from pipelines.manifest import parse_manifest
from pipelines.renderer import Renderer
from tests.conftest import DATA


def _render(tmp_path, name: str, model_line: str, seed: int = 0) -> tuple[np.ndarray, Renderer]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\noutput: {tmp_path / name}\nmodel: {model_line}\njobs:\n"
                    f"  - {{name: t, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'},"
                    f" seeds: [{seed}], params: {{size: 32, iterations: 3}}}}\n")
    manifest = parse_manifest(str(path))
    renderer = Renderer(model=manifest.model, threads=1)
    record = renderer.render(manifest.tasks[0].to_dict())
    assert record["status"] == "done", record.get("error")
    with open(record["output_uri"], "rb") as f:
        return np.asarray(Image.open(io.BytesIO(f.read())), dtype=np.float32), renderer


@pytest.mark.parametrize("options, attribute", [
    ("{weights: random, channels_last: true}", "channels_last"),
    pytest.param("{weights: random, compile: true}", "compiled", marks=pytest.mark.skipif(
        not shutil.which(os.environ.get("CXX", "g++")), reason="torch.compile on CPU needs a C++ compiler")),
])
def test_speed_options_render_what_the_plain_network_renders(tmp_path, options, attribute):
    plain, plain_renderer = _render(tmp_path, "plain", "{weights: random}")
    fast, fast_renderer = _render(tmp_path, "fast", options)
    assert getattr(fast_renderer.vgg, attribute) and not getattr(plain_renderer.vgg, attribute)
    assert fast.shape == plain.shape == (32, 32, 3)
    # Same seed, same optimization: only float rounding differs (8-bit pixels, a few levels at most),
    # far less than another seed makes.
    other_seed, _ = _render(tmp_path, "other", "{weights: random}", seed=1)
    assert np.abs(fast - plain).mean() < 2.0 < np.abs(other_seed - plain).mean()
