"""The benchmark runs once at a tiny size so it cannot rot; it asserts nothing about speed."""
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_benchmark_runs_at_a_tiny_size(tmp_path):
    # Every section at 32 px but --compile (the compiled network is checked against eager in test_vgg.py and
    # test_network_options.py), the pipeline without its warm-up runs. The second network variant is channels-last
    # fp32 (bf16 is checked against fp32 in test_vgg.py; on a CPU without bf16 units its exemplar targets alone
    # took 130 s) and the patch matching one small shape (the default 4096x16384 took 95 s): 428 s -> about 190 s.
    out = tmp_path / "bench.md"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "bench", "--sizes", "32", "--iterations", "2", "--mrf", "--nets",
         "--train-steps", "2", "--batch", "2", "--channels-last", "--matching", "256x1024", "--optimizer", "--reference", "--pipeline", "--no-warmup", "--tasks", "1",
         "--output", str(out)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    for heading in ("Gatys texture vs the VGG ceiling", "Batched Gatys textures", "MRF texture vs Gatys",
                    "Patch matching vs a plain matrix product", "Texture Networks: one-pass generate",
                    "training throughput", "generator architectures, same training time", "Pipeline (texfarm run", "Pipeline scaling: 2 actors vs 1",
                    "L-BFGS per iteration", "Where a render's time goes, against a minimal reference objective",
                    "Peak memory of one evaluation",
                    "The performance goals against this run"):
        assert heading in text, heading
    assert "| fp32 + channels_last | 32 |" in text
    assert "| 256 | 1024 | 2304 |" in text  # the matching shape asked for
    breakdown = text.split("Where a render's time goes")[1].split("## ")[0]
    assert all(f"| {kind} | 32 |" in breakdown for kind in ("texture", "style", "mrf", "swd")), breakdown
    # a 32 px CPU run is not the goals' setting: every goal row says so
    goals = text.split("## The performance goals against this run")[1]
    goal_lines = [line for line in goals.splitlines() if line.startswith("| ")][1:]  # below the header
    assert len(goal_lines) == 3 and all(line.endswith("| no |") for line in goal_lines), goal_lines


def test_quality_benchmark_runs_at_a_tiny_size(tmp_path):
    """`texfarm bench --quality`: every texture kind (and the baselines) on every shipped texture plus
    the sparse exemplar gets a row, and the picture sheet has a row per texture."""
    from PIL import Image

    table, sheet = tmp_path / "quality.md", tmp_path / "sheet.png"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "bench", "--quality", "--size", "32", "--exemplar-side", "48",
         "--iterations", "3", "--train-steps", "2", "--net-variants", "--sparse", "--tile", "40",
         "--output", str(table), "--sheet", str(sheet)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split(" | ") for line in table.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    header, rows = rows[0], rows[1:]
    textures = {row[0].lstrip("| ") for row in rows}
    assert textures == {"pebbles.jpg", "water.jpg", "red_peppers.jpg", "dots.png", "dots on white 2x",
                        "dots scattered /2", "dots scattered /4"}
    methods = {row[1] for row in rows}
    assert {"gatys", "mrf", "mrf (nearest, paper)", "swd", "texture net", "texture net BN", "texture net IN+div",
            "baseline: crop", "baseline: noise", "baseline: shuffled 8 px tiles", "baseline: blank"} <= methods
    assert len(rows) == len(textures) * len(methods)
    quality = header.index("quality")
    for texture in {"pebbles.jpg", "water.jpg", "red_peppers.jpg"}:  # at 32 px a crop of the sparse ones is 1 dot
        score = {row[1]: float(row[quality]) for row in rows if row[0].lstrip("| ") == texture}
        assert score["baseline: crop"] < score["baseline: noise"] < score["baseline: blank"], (texture, score)
    ink = header.index("ink")
    assert all(row[ink].strip() for row in rows if row[0].lstrip("| ").startswith("dots"))  # element columns
    copy = header.index("copy_distance")
    assert all(row[copy].strip() for row in rows if row[1].startswith("mrf"))  # the verbatim-copy check ran
    width, height = Image.open(sheet).size
    assert height == len(textures) * (40 + 16) and width >= 8 * 40
