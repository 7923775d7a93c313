"""What boto3 users expect of a tool that writes to S3: the SDKs' endpoint and region order, a
Content-Type on every upload, and one clear line when the endpoint cannot be reached."""
import socket

from pipelines.cli import main
from pipelines.storage import Storage, StorageConfig, make_s3_client


def test_every_upload_has_its_content_type(bucket, s3_endpoint):
    name, client = bucket
    storage = Storage(StorageConfig(endpoint_url=s3_endpoint))
    expected = {"a.png": "image/png", "a.jpg": "image/jpeg", "r.json": "application/json",
                "index.html": "text/html; charset=utf-8", "catalog.parquet": "application/vnd.apache.parquet",
                "g.safetensors": "application/octet-stream"}
    for key in expected:
        storage.write(f"s3://{name}/w/{key}", b"x")
        assert storage.write_new(f"s3://{name}/n/{key}", b"x")
    for prefix in ("w", "n"):
        for key, ctype in expected.items():
            assert client.head_object(Bucket=name, Key=f"{prefix}/{key}")["ContentType"] == ctype, (prefix, key)


def test_the_s3_specific_endpoint_wins_as_in_the_aws_sdks(bucket, s3_endpoint, monkeypatch):
    name, client = bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    Storage(StorageConfig(max_attempts=1)).write(f"s3://{name}/k.json", b"{}")
    assert client.get_object(Bucket=name, Key="k.json")["Body"].read() == b"{}"


def test_region_follows_the_standard_chain(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert make_s3_client(StorageConfig()).meta.region_name == "eu-west-3"
    assert make_s3_client(StorageConfig(region="ap-south-1")).meta.region_name == "ap-south-1"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ca-central-1")
    assert make_s3_client(StorageConfig()).meta.region_name == "ca-central-1"


def test_an_unreachable_endpoint_is_one_clear_line(tmp_path, capsys):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "m.yaml"
    inputs = ", ".join(f"s3://b/in/{i}.jpg" for i in range(5))
    path.write_text(f"name: n\noutput: s3://b/out\nstorage: {{endpoint_url: 'http://127.0.0.1:{port}'}}\n"
                    f"model: {{weights: random}}\njobs:\n  - {{name: a, kind: texture, inputs: [{inputs}]}}\n"
                    f"  - {{name: b, kind: texture, inputs: [{inputs}], seeds: -1}}\n"
                    f"  - {{name: c, kind: texture, inputs: {tmp_path}/nothing-here.png}}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the storage endpoint http://127.0.0.1:{port}" in err
    assert err.count("127.0.0.1") == 1 and "Traceback" not in err  # said once, not once per input
    # The rest of the manifest is still checked: the jobs' own problems and local inputs come with it.
    assert "s3:// inputs are not checked until the endpoint answers" in err
    assert "m.yaml:7: jobs[1].seeds: must be a count" in err and "m.yaml:8: jobs[2].inputs:" in err, err


def test_keys_and_paths_with_url_characters_are_taken_literally(bucket, s3_endpoint, tmp_path):
    """`#`, `?` and `%` are ordinary characters in S3 keys and file names, not a URL's fragment, query
    or escape: an output `s3://b/run#2` once wrote everything to the single key `run`."""
    name, client = bucket
    storage = Storage(StorageConfig(endpoint_url=s3_endpoint))
    for key in ("run#2/a/x.json", "in/photo #1?.png", "in/50%20off é.png"):
        storage.write(f"s3://{name}/{key}", key.encode())
        assert client.get_object(Bucket=name, Key=key)["Body"].read() == key.encode()
        assert storage.read(f"s3://{name}/{key}") == key.encode()
    assert storage.list(f"s3://{name}/run#2/") == [f"s3://{name}/run#2/a/x.json"]
    local = tmp_path / "out#2" / "x?.json"
    storage.write(f"file://{local}", b"{}")
    assert local.read_bytes() == b"{}" and not (tmp_path / "out").exists()
