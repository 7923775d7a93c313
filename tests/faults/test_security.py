"""Security: safe YAML, no unpickling, keys that cannot escape the output, no leaked secrets or files."""
import json
import pickle

import pytest
import torch

from pipelines.cli import main
from pipelines.manifest import ManifestError, parse_manifest
from pipelines.renderer import Renderer
from tasks.vgg import WeightsUnavailable, build_vgg19
from tests.conftest import DATA


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what an attacker's pickle does on load: run code
        return (open, (str(self.marker), "w"))


def test_yaml_tags_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\noutput: out\njobs: []\n')
    with pytest.raises(ManifestError) as info:
        parse_manifest(str(path))
    assert "evil.yaml:1" in str(info.value)
    assert not marker.exists()


def test_weights_files_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "vgg19.pth"
    evil.write_bytes(pickle.dumps({"features.0.weight": _Payload(marker)}))
    with pytest.raises(WeightsUnavailable, match="cannot read weights file"):
        build_vgg19(str(evil))
    assert not marker.exists()


def _parse_job_named(tmp_path, job_name):
    path = tmp_path / "m.yaml"
    path.write_text(f"name: n\noutput: out\nmodel: {{weights: random}}\njobs:\n"
                    f"  - name: {json.dumps(job_name)}\n    kind: texture\n    inputs: {DATA / 'textures' / 'pebbles.jpg'}\n")
    return parse_manifest(str(path))


@pytest.mark.parametrize("job_name", ["../up", "a/b", "/abs", "x y", "..", ".hidden", "tab\there", "ünï"])
def test_job_names_cannot_escape_the_output(tmp_path, job_name):
    with pytest.raises(ManifestError, match="letters, digits"):
        _parse_job_named(tmp_path, job_name)


@pytest.mark.parametrize("job_name, message", [("_report", "letters, digits"), ("catalog.parquet", "is reserved")])
def test_job_names_cannot_take_the_report_or_catalog_keys(tmp_path, job_name, message):
    with pytest.raises(ManifestError, match=message):
        _parse_job_named(tmp_path, job_name)


def test_every_output_key_stays_under_the_output(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(f"name: n\noutput: runs/x/\nmodel: {{weights: random}}\njobs:\n"
                    f"  - {{name: a.b_c-1, kind: texture, inputs: {DATA / 'textures'}/, seeds: 3}}\n")
    manifest = parse_manifest(str(path))
    images = [p for p in (DATA / 'textures').iterdir() if p.suffix in ('.jpg', '.png')]
    assert len(manifest.tasks) == 3 * len(images)
    for task in manifest.tasks:
        assert task.output_prefix.startswith(f"{tmp_path}/runs/x/a.b_c-1/")
        assert ".." not in task.output_prefix and "//" not in task.output_prefix


def test_a_named_non_image_file_fails_without_leaking_its_content(tmp_path):
    secret_file = tmp_path / "notes.png"
    secret_file.write_text("password=hunter2\n")
    renderer = Renderer(model={"weights": "random"}, threads=1)
    spec = {"task_id": "t1", "job": "j", "kind": "texture", "seed": 0,
            "inputs": {"inputs": [str(secret_file)]}, "params": {"size": 32, "iterations": 1},
            "output_prefix": str(tmp_path / "out" / "j" / "t1")}
    record = renderer.render(spec)
    assert record["status"] == "failed" and "not a readable image" in record["error"]
    written = (tmp_path / "out" / "j" / "t1.failed.json").read_text()
    assert "hunter2" not in written and "hunter2" not in json.dumps(record)


def test_renderer_keeps_working_after_a_failed_task(tmp_path):
    renderer = Renderer(model={"weights": "random"}, threads=1)
    base = {"job": "j", "kind": "texture", "seed": 0, "params": {"size": 32, "iterations": 1}}
    bad = renderer.render({**base, "task_id": "bad", "inputs": {"inputs": [str(tmp_path / "missing.png")]},
                           "output_prefix": str(tmp_path / "j" / "bad")})
    good = renderer.render({**base, "task_id": "good", "inputs": {"inputs": [str(DATA / "textures" / "pebbles.jpg")]},
                            "output_prefix": str(tmp_path / "j" / "good")})
    assert bad["status"] == "failed" and good["status"] == "done"
    assert torch.isfinite(torch.tensor(good["loss_end"]))


def test_a_password_in_an_endpoint_url_is_never_printed_or_stored(tmp_path, capsys):
    from pipelines.redact import redact

    secret = "sekrit-pass-4711"
    path = tmp_path / "m.yaml"
    path.write_text(f"name: n\noutput: s3://bucket/runs\nstorage: {{endpoint_url: 'http://admin:{secret}@127.0.0.1:9',"
                    f" max_attempts: 1}}\nmodel: {{weights: random}}\njobs:\n"
                    f"  - {{name: a, kind: texture, inputs: s3://bucket/in/x.jpg}}\n")
    assert main(["validate", str(path)]) == 2
    out = capsys.readouterr()
    assert "127.0.0.1:9" in out.err and secret not in out.err + out.out
    signed = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAX%2F1&X-Amz-Signature=abc123&x=1"
    assert redact(signed) == "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&x=***"
    # A password holding '@' goes whole (redaction once stopped at its first '@'); a token in an
    # endpoint's query string too; S3 keys and hosts stay readable.
    assert redact("cannot reach http://admin:ss@SECRET@127.0.0.1:9/b?token=T0KEN: refused") == \
        "cannot reach http://***@127.0.0.1:9/b?token=*** refused"
    assert redact("s3://bucket/in/photo #1.png and https://host:9000/path") == \
        "s3://bucket/in/photo #1.png and https://host:9000/path"
