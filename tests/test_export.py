"""Dataset export from a real run: Parquet shards read back by pyarrow's dataset reader (what pandas and
Ray Data use), WebDataset shards by the webdataset library."""
import io
import json

import pytest
from PIL import Image

from pipelines.cli import main
from pipelines.manifest import parse_manifest
from pipelines.run import run_manifest
from tests.conftest import DATA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, ray_cluster):
    tmp_path = tmp_path_factory.mktemp("export")
    path = tmp_path / "run.yaml"
    path.write_text(f"name: ds\noutput: out\nmodel: {{weights: random}}\njobs:\n"
                    f"  - {{name: t, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'}, seeds: 3,"
                    f" params: {{size: 32, iterations: 2}}}}\n")
    manifest = parse_manifest(str(path))
    assert run_manifest(manifest, stream=None).failed == []
    return tmp_path, {t.task_id for t in manifest.tasks}


def test_parquet_shards_load_as_one_dataset(finished_run):
    import pyarrow.dataset as pads

    tmp_path, ids = finished_run
    dest = tmp_path / "parquet"
    assert main(["export", str(tmp_path / "out"), str(dest), "--format", "parquet", "--shard-size", "2"]) == 0
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith("_")) == \
        ["part-00000.parquet", "part-00001.parquet"]
    rows = pads.dataset(str(dest), format="parquet").to_table().to_pylist()  # the stats files are not data
    assert {r["task_id"] for r in rows} == ids and all(r["status"] == "done" for r in rows)
    assert all(Image.open(io.BytesIO(r["image"])).size == (32, 32) == (r["width"], r["height"]) for r in rows)
    assert {r["image_ext"] for r in rows} == {"png"}
    listing = json.loads((dest / "_shards.json").read_text())
    assert [s["count"] for s in listing["shards"]] == [2, 1]
    stats = json.loads((dest / "_part-00000.parquet_stats.json").read_text())
    assert stats["count"] == 2 and stats["bytes"] == (dest / "part-00000.parquet").stat().st_size


def test_a_second_export_into_the_same_folder_is_refused_unless_overwrite(finished_run, capsys):
    """Re-exporting with another shard size left the old shards beside the new: every sample twice."""
    import webdataset

    tmp_path, ids = finished_run
    dest = tmp_path / "again"
    assert main(["export", str(tmp_path / "out"), str(dest), "--format", "webdataset", "--shard-size", "1"]) == 0
    assert len(list(dest.glob("shard-*.tar"))) == 3
    capsys.readouterr()
    assert main(["export", str(tmp_path / "out"), str(dest), "--format", "webdataset"]) == 2
    assert "already holds an export" in capsys.readouterr().err and len(list(dest.glob("shard-*.tar"))) == 3
    assert main(["export", str(tmp_path / "out"), str(dest), "--format", "parquet"]) == 2  # nor another format
    assert main(["export", str(tmp_path / "out"), str(dest), "--format", "webdataset", "--overwrite"]) == 0
    assert [p.name for p in sorted(dest.glob("shard-*.tar"))] == ["shard-00000.tar"]
    samples = list(webdataset.WebDataset([str(dest / "shard-00000.tar")], shardshuffle=False))
    assert len(samples) == len(ids) == 3
    (dest / "mine.txt").write_text("a user's file")  # never deleted: refused even with --overwrite
    assert main(["export", str(tmp_path / "out"), str(dest), "--format", "webdataset", "--overwrite"]) == 2
    assert "files an export does not write (mine.txt)" in capsys.readouterr().err
    assert (dest / "mine.txt").exists()


def test_webdataset_shards_load_in_webdataset(finished_run):
    import webdataset

    tmp_path, ids = finished_run
    dest = tmp_path / "wds"
    assert main(["export", str(tmp_path / "out"), str(dest), "--format", "webdataset", "--shard-size", "2"]) == 0
    assert sorted(p.name for p in dest.glob("shard-*")) == ["shard-00000.tar", "shard-00001.tar"]
    shards = [str(p) for p in sorted(dest.glob("shard-*"))]
    samples = list(webdataset.WebDataset(shards, shardshuffle=False))
    assert {s["__key__"] for s in samples} == ids
    for sample in samples:
        assert Image.open(io.BytesIO(sample["png"])).size == (32, 32)
        assert b'"task_id"' in sample["json"]
