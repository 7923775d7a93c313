"""A finished task is never written again: the record (the completion marker) is written only if absent,
and a failure to tidy up after a success does not turn the success into a failure."""
import json

import pytest

from pipelines.renderer import Renderer
from pipelines.storage import Storage, StorageConfig
from tests.conftest import DATA


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_second_writer_cannot_overwrite_a_completion_marker(tmp_path, where, request):
    if where == "s3":
        name, client = request.getfixturevalue("bucket")
        storage = Storage(StorageConfig(endpoint_url=request.getfixturevalue("s3_endpoint")))
        uri = f"s3://{name}/run/job/abc.json"
    else:
        storage, uri = Storage(), str(tmp_path / "run" / "job" / "abc.json")
    assert storage.write_new(uri, b'{"attempt": 1}') is True
    assert storage.write_new(uri, b'{"attempt": 2}') is False
    assert storage.read(uri) == b'{"attempt": 1}'
    if where == "local":
        assert [p.name for p in (tmp_path / "run" / "job").iterdir()] == ["abc.json"]  # no temporary left


def _spec(tmp_path, clear_failed: bool) -> dict:
    return {"task_id": "t1", "job": "j", "kind": "texture", "seed": 0,
            "inputs": {"inputs": [str(DATA / "textures" / "pebbles.jpg")]}, "params": {"size": 32, "iterations": 2},
            "output_prefix": str(tmp_path / "out" / "j" / "t1"), "depends_on": [], "clear_failed": clear_failed}


def test_a_failed_cleanup_after_a_success_is_not_a_failure(tmp_path):
    renderer = Renderer(model={"weights": "random"})

    def delete(uri):
        raise OSError("storage hiccup on DELETE")

    renderer.storage.delete = delete
    (tmp_path / "out" / "j").mkdir(parents=True)
    (tmp_path / "out" / "j" / "t1.failed.json").write_text('{"status": "failed"}')  # from an earlier run
    record = renderer.render(_spec(tmp_path, clear_failed=True))
    assert record["status"] == "done", record.get("error")
    assert json.loads((tmp_path / "out" / "j" / "t1.json").read_text())["status"] == "done"


def test_a_success_deletes_nothing_when_no_failed_record_was_listed(tmp_path):
    renderer = Renderer(model={"weights": "random"})
    deletes = []
    renderer.storage.delete = deletes.append
    assert renderer.render(_spec(tmp_path, clear_failed=False))["status"] == "done"
    assert deletes == []  # no needless DELETE per task
    # and a second attempt of the same task keeps the first record
    again = renderer.render(_spec(tmp_path, clear_failed=False))
    assert again["status"] == "done" and again["duplicate"] is True
