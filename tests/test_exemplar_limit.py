"""A camera photo as exemplar (issue 26: 4000x3000, 408 s and 12.5 GB for a 64 px texture) is scaled
down to limits.max_exemplar_pixels, with a warning and a note in the record; the render stays bounded."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipelines.manifest import ManifestError, parse_manifest
from pipelines.renderer import Renderer
from tests.conftest import DATA, REPO


def _photo(path, width, height) -> None:
    """A large exemplar: pebbles tiled (real texture, not flat colour), as PNG."""
    tile = np.asarray(Image.open(DATA / "textures" / "pebbles.jpg").convert("RGB"))
    reps = (height // tile.shape[0] + 1, width // tile.shape[1] + 1, 1)
    Image.fromarray(np.tile(tile, reps)[:height, :width]).save(path)


def test_a_large_exemplar_is_scaled_down_with_a_warning_and_a_record(tmp_path, capsys):
    _photo(tmp_path / "big.png", 400, 300)
    path = tmp_path / "run.yaml"
    path.write_text(f"name: big\noutput: {tmp_path / 'out'}\nmodel: {{weights: random}}\n"
                    f"limits: {{max_exemplar_pixels: 30000}}\njobs:\n"
                    f"  - {{name: t, kind: texture, inputs: big.png, params: {{size: 32, iterations: 2}}}}\n")
    manifest = parse_manifest(str(path))
    renderer = Renderer(model=manifest.model, threads=1, max_exemplar_pixels=manifest.limits["max_exemplar_pixels"])
    record = renderer.render(manifest.tasks[0].to_dict())
    assert record["status"] == "done", record.get("error")
    note = record["exemplars_scaled"][str(tmp_path / "big.png")]
    assert note["size"] == [400, 300] and note["used"][0] * note["used"][1] <= 30000 and note["scale"] == 0.5
    assert "big.png is 400x300, over limits.max_exemplar_pixels (30,000): used at 200x150" in capsys.readouterr().err
    on_disk = json.loads((tmp_path / "out" / "t" / f"{record['task_id']}.json").read_text())
    assert on_disk["exemplars_scaled"] == record["exemplars_scaled"]
    path.write_text(path.read_text().replace("30000", "0"))
    with pytest.raises(ManifestError, match=r"limits.max_exemplar_pixels: must be a positive count"):
        parse_manifest(str(path))


@pytest.mark.slow
def test_rendering_from_a_camera_sized_exemplar_keeps_memory_bounded(tmp_path):
    """3000x2000 (6 MP) exemplar, 32 px texture: at native size the VGG pass alone needs gigabytes."""
    _photo(tmp_path / "camera.png", 3000, 2000)
    out = tmp_path / "t.png"
    result = subprocess.run([sys.executable, "-c", PEAK, "render", "texture", str(tmp_path / "camera.png"),
                             "-o", str(out), "--weights", "random", "--size", "32", "--iterations", "2"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_mb = int(result.stderr.rsplit("peak_kb ", 1)[1]) / 1024
    assert "camera.png is 3000x2000, over 1,048,576 pixels: used at scale 0.418" in result.stderr
    assert Image.open(out).size == (32, 32)
    print(f"peak RSS {peak_mb:.0f} MB")
    # Measured on a 2-core CPU: 2.1 GB scaled down, 6.9 GB with the exemplar at its native 6 MP.
    assert peak_mb < 3500, peak_mb


# `texfarm render` in a process that reports its own peak resident memory (not other tests' children).
PEAK = ("import resource, sys\nfrom pipelines.cli import main\ncode = main(sys.argv[1:])\n"
        "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(code)")
