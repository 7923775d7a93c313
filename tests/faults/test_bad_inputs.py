"""Bad inputs fail their own task with a reason in the record and the catalog; the others finish."""
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.manifest import parse_manifest
from pipelines.run import run_manifest
from tasks.imageio import BadImage, decode_image
from tests.conftest import DATA

pytestmark = pytest.mark.slow


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _inputs(folder):
    rgb = Image.open(DATA / "textures" / "pebbles.jpg").convert("RGB").resize((48, 48))
    sixteen = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    good = {
        "gray.png": _png(rgb.convert("L")),
        "cmyk.jpg": _png(rgb.convert("CMYK"), "JPEG"),
        "sixteen.png": _png(sixteen),
        "palette.png": _png(rgb.convert("P", palette=Image.ADAPTIVE)),
        "alpha.png": (DATA / "textures" / "dots.png").read_bytes(),
        "tiny.png": _png(rgb.resize((4, 4))),
    }
    bad = {
        "truncated.jpg": _png(rgb, "JPEG")[:300],
        "not-an-image.png": b"this is a text file with a png name\n",
        "bomb.png": _png(Image.new("RGB", (500, 500), "white")),  # over the manifest's pixel cap
        "missing.png": _png(rgb),  # deleted after validation
    }
    for name, data in {**good, **bad}.items():
        (folder / name).write_bytes(data)
    return good, bad


def test_bad_inputs_fail_alone_with_reasons(tmp_path, ray_cluster):
    folder = tmp_path / "in"
    folder.mkdir()
    good, bad = _inputs(folder)
    manifest_path = tmp_path / "run.yaml"
    manifest_path.write_text(
        "name: bad-inputs\noutput: out\nmodel: {weights: random}\ncluster: {workers: 2}\n"
        "limits: {max_input_pixels: 100000}\n"
        "jobs:\n  - {name: mixed, kind: texture, inputs: in/, seeds: 1, params: {size: 32, iterations: 2}}\n")
    manifest = parse_manifest(str(manifest_path))
    (folder / "missing.png").unlink()
    summary = run_manifest(manifest, stream=None)

    assert summary.exit_code == 1
    failed = {record["inputs"]["inputs"][0].rsplit("/", 1)[-1]: record["error"] for record in summary.failed}
    assert set(failed) == set(bad)
    assert "not a readable image" in failed["truncated.jpg"]
    assert "not a readable image" in failed["not-an-image.png"]
    assert "over the cap of 100000" in failed["bomb.png"]
    assert "cannot read" in failed["missing.png"] and "missing.png" in failed["missing.png"]
    done = [r for r in summary.records if r["status"] == "done"]
    assert len(done) == len(good)
    for record in done:  # converted, not rejected: each output is a full RGB image
        assert Image.open(record["output_uri"]).mode == "RGB"

    rows = pq.read_table(tmp_path / "out" / "catalog.parquet").to_pylist()
    assert len(rows) == len(good) + len(bad)
    assert {r["error"] for r in rows if r["status"] == "failed"} == set(failed.values())
    # A failed task leaves a .failed.json record, never a success marker or an image.
    for record in summary.failed:
        prefix = record["inputs"] and tmp_path / "out" / "mixed" / record["task_id"]
        assert json.loads((prefix.parent / f"{record['task_id']}.failed.json").read_text())["status"] == "failed"
        assert not (prefix.parent / f"{record['task_id']}.json").exists()
        assert not (prefix.parent / f"{record['task_id']}.png").exists()


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "LA", "I;16", "1"])
def test_every_image_mode_decodes_to_rgb(mode):
    source = Image.open(DATA / "textures" / "pebbles.jpg").convert("RGB").resize((20, 16))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(source.convert("L"), dtype=np.uint16) * 257)
        assert image.mode == "I;16"
    else:
        image = source.convert(mode)
    tensor = decode_image(_png(image, "JPEG" if mode == "CMYK" else "PNG"))
    assert tensor.shape == (1, 3, 16, 20)
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0 and float(tensor.std()) > 0.01


def test_decompression_bomb_is_refused_before_decoding():
    data = _png(Image.new("L", (3000, 3000)))
    with pytest.raises(BadImage, match="over the cap"):
        decode_image(data, max_pixels=1_000_000, name="big.png")


def test_symlinks_that_leave_the_named_inputs_are_not_inputs(tmp_path):
    from pipelines.storage import Storage

    private = tmp_path / "private"
    private.mkdir()
    (private / "secret.png").write_bytes((DATA / "textures" / "dots.png").read_bytes())
    inputs = tmp_path / "inputs"
    (inputs / "sub").mkdir(parents=True)
    (inputs / "pebbles.jpg").write_bytes((DATA / "textures" / "pebbles.jpg").read_bytes())
    (inputs / "leak.png").symlink_to(private / "secret.png")
    (inputs / "sub" / "linked-dir").symlink_to(private, target_is_directory=True)
    (inputs / "same.jpg").symlink_to(inputs / "pebbles.jpg")  # a link that stays inside is fine
    storage = Storage()
    for pattern in (f"{inputs}/", f"{inputs}/**/*.png", f"{inputs}/*"):
        found = storage.expand(pattern)
        assert not any("leak" in uri or "linked-dir" in uri for uri in found), (pattern, found)
    assert sorted(Path(uri).name for uri in storage.expand(f"{inputs}/")) == ["pebbles.jpg", "same.jpg"]


def test_sixteen_bit_images_are_scaled_by_their_declared_depth(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from tasks.imageio import decode_image

    dark = np.full((32, 32), 200, dtype=np.uint16)  # every value below 256: still a very dark 16-bit image
    buffer = io.BytesIO()
    Image.fromarray(dark).save(buffer, format="PNG")
    assert decode_image(buffer.getvalue()).max().item() < 0.01


def test_one_pixel_cap_ours_and_errors_name_the_input():
    import io

    from PIL import Image

    from tasks.imageio import BadImage, decode_image

    big = io.BytesIO()
    Image.new("L", (10000, 9000)).save(big, format="PNG")  # 90 MP: over Pillow's own 89.5 MP guard
    assert decode_image(big.getvalue(), max_pixels=10000 * 10000).shape == (1, 3, 9000, 10000)
    with pytest.raises(BadImage, match=r"s3://b/not-an-image.png is not a readable image: .*s3://b/not-an-image.png"):
        decode_image(b"plain text", name="s3://b/not-an-image.png")


def test_file_names_that_are_not_utf8_render_fail_alone_and_reach_the_catalog(tmp_path, ray_cluster):
    """Python keeps a non-UTF-8 file name as lone surrogates; every stored and printed text must be valid
    UTF-8 (the catalog's Parquet strings above all), while the name itself still opens the file. The
    report does not decode an input over the run's pixel cap: its task refused it."""
    import os
    import subprocess
    import sys

    from pipelines.report import build_report
    from pipelines.storage import Storage

    folder = tmp_path / "in"
    folder.mkdir()
    rgb = Image.open(DATA / "textures" / "pebbles.jpg").convert("RGB").resize((40, 40))
    (folder / os.fsdecode(b"caf\xe9.png")).write_bytes(_png(rgb))
    (folder / os.fsdecode(b"bad\xff.png")).write_bytes(b"not an image")
    (folder / "big.png").write_bytes(_png(Image.new("RGB", (400, 400), "white")))
    manifest_path = tmp_path / "run.yaml"
    manifest_path.write_text(
        "name: names\noutput: out\nmodel: {weights: random}\ncluster: {workers: 1}\n"
        "limits: {max_input_pixels: 100000}\n"
        "jobs:\n  - {name: j, kind: texture, inputs: in/, seeds: 1, params: {size: 16, iterations: 2, octaves: 1}}\n")
    manifest = parse_manifest(str(manifest_path))
    summary = run_manifest(manifest, stream=None)

    assert summary.exit_code == 1
    rows = pq.read_table(tmp_path / "out" / "catalog.parquet").to_pylist()
    assert sorted(r["status"] for r in rows) == ["done", "failed", "failed"]
    errors = " ".join(r["error"] for r in rows if r["error"])
    assert "bad\\xff.png is not a readable image" in errors and "big.png" in errors
    done = next(r for r in rows if r["status"] == "done")
    assert Image.open(done["output_uri"]).size == (16, 16)

    report = build_report(Storage(), manifest.output, max_input_pixels=100000)
    index = Path(report.index_uri).read_text(encoding="utf-8")
    assert "caf\\xe9.png" in index  # the input strip shows it, bytes escaped
    state = json.loads((tmp_path / "out" / "_report" / "state.json").read_text())
    assert not any(uri.endswith("big.png") for uri in state["inputs"])  # refused by its task: not decoded

    listed = subprocess.run([sys.executable, "-m", "pipelines.cli", "failures", manifest.output],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "bad\\xff.png is not a readable image" in listed.stdout
