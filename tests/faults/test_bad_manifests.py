"""Bad manifests: exit code 2, one message per problem with file, line and key, nothing started or written."""
import pytest

from pipelines.cli import main
from pipelines.manifest import ManifestError, parse_manifest
from tests.conftest import DATA

JOB = f"  - {{name: a, kind: texture, inputs: {DATA / 'textures' / 'pebbles.jpg'}, params: {{size: 64}}}}\n"


def _write(tmp_path, text):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return str(path)


def test_run_on_a_bad_manifest_starts_and_writes_nothing(tmp_path, capsys):
    path = _write(tmp_path, "name: n\noutput: out\nmodel: {weights: random}\njobs:\n" + JOB +
                  "  - {name: b, kind: texture, inputs: nowhere/*.jpg}\n  - {name: a, kind: texture, inputs: x.jpg}\n")
    assert main(["run", path]) == 2
    err = capsys.readouterr().err
    assert "m.yaml:6: jobs[1].inputs: 'nowhere/*.jpg' matches no input" in err
    assert "m.yaml:7: jobs[2].name: duplicate job name 'a'" in err and "m.yaml:7: jobs[2].inputs" in err
    assert not (tmp_path / "out").exists()


def test_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ManifestError) as info:
        parse_manifest(_write(tmp_path, "name: n\noutput: a-file/run\nmodel: {weights: random}\njobs:\n" + JOB))
    assert "m.yaml:2: output: cannot write under" in str(info.value) and "is not a folder" in str(info.value)


def test_size_cap_is_configurable(tmp_path):
    text = "name: n\noutput: out\nmodel: {weights: random}\nlimits: {max_size: 48}\njobs:\n" + JOB
    with pytest.raises(ManifestError, match=r"m.yaml:6: jobs\[0\].params.size: 64x64 is over the cap of 48 px"):
        parse_manifest(_write(tmp_path, text))
    assert parse_manifest(_write(tmp_path, text.replace("max_size: 48", "max_size: 64"))).tasks


@pytest.mark.parametrize("text, expected", [
    ("name: n\noutput: out\njobs: [\n", "m.yaml:4: YAML syntax error"),
    ("name: n\noutput: out\nmodle: {weights: random}\njobs:\n" + JOB, "m.yaml:3: modle: unknown key; did you mean 'model'?"),
    ("name: n\noutput: out\nmodel: {weights: 5}\njobs:\n" + JOB, "m.yaml:3: model.weights: must be imagenet, random"),
    ("name: n\noutput: out\nmodel: {weights: random, compile: yes-please}\njobs:\n" + JOB,
     "m.yaml:3: model.compile: must be true or false"),
    ("name: n\noutput: out\ncluster: {workers: -2}\njobs:\n" + JOB, "m.yaml:3: cluster.workers: must be 'auto', a positive count"),
    ("name: n\noutput: out\njobs: []\n", "m.yaml:3: jobs: must be a non-empty list"),
    ("output: out\njobs:\n" + JOB, "m.yaml:1: missing required key 'name'"),
])
def test_problem_messages(tmp_path, text, expected):
    with pytest.raises(ManifestError) as info:
        parse_manifest(_write(tmp_path, text))
    assert any(p.format("m.yaml").startswith(expected) for p in info.value.problems), str(info.value)


def test_missing_weights_file_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match=r"m.yaml:3: model.weights: .*nope.pth does not exist"):
        parse_manifest(_write(tmp_path, "name: n\noutput: out\nmodel: {weights: nope.pth}\njobs:\n" + JOB))


@pytest.mark.parametrize("text, expected", [
    # a 540-byte-class alias bomb: each level repeats the one before nine times
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")),
     "m.yaml:1: the manifest expands to more than 1,000,000 values"),
    ("name: !!python/name:os.system n\n", "m.yaml:1: YAML tag 'tag:yaml.org,2002:python/name:os.system' is not allowed"),
    ("name: n\njobs: !!set {a: null}\n", "m.yaml:2: YAML tag 'tag:yaml.org,2002:set' is not allowed"),
    ("name: n\n? [a, b]\n: 1\n", "m.yaml:2: a key must be a plain name"),
    ("name: n\noutput: out\njobs:\n" + JOB.replace("params:", "seeds: [9223372036854775808], params:"),
     "m.yaml:4: jobs[0].seeds: each seed must be between 0 and 2^63 - 1"),
    ("name: n\noutput: out\njobs:\n" + JOB.replace("params:", "seeds: 100000000, params:"),
     "m.yaml:4: jobs[0].seeds: 100000000 seeds is over the cap of 100000 tasks"),
    ("name: n\noutput: out\nlimits: {max_tasks: 3}\njobs:\n" + JOB.replace("params:", "seeds: 2, params:")
     + JOB.replace("params:", "seeds: 2, params:").replace("name: a", "name: b"),
     "m.yaml:6: jobs[1]: the manifest expands to over 3 tasks"),
    ("name: n\noutput: out\ncluster: {pipeline_depth: 0}\njobs:\n" + JOB, "m.yaml:3: cluster.pipeline_depth: must be at least 1"),
    ("name: n\noutput: out\ncluster: {cpus_per_worker: 0}\njobs:\n" + JOB, "m.yaml:3: cluster.cpus_per_worker: must be above 0"),
    ("name: n\noutput: out\nstorage: {max_attempts: many}\njobs:\n" + JOB, "m.yaml:3: storage.max_attempts: must be a positive count"),
    ("name: n\noutput: out\nlimits: {max_input_pixels: lots}\njobs:\n" + JOB, "m.yaml:3: limits.max_input_pixels: must be a positive count"),
    ("name: n\noutput: s3://bucket/runs/../../x\njobs:\n" + JOB, "m.yaml:2: output: '.' and '..' are not allowed"),
])
def test_hostile_manifests_are_refused_clearly(tmp_path, text, expected):
    with pytest.raises(ManifestError) as info:
        parse_manifest(_write(tmp_path, text))
    assert any(p.format("m.yaml").startswith(expected) for p in info.value.problems), str(info.value)


def test_a_huge_manifest_is_refused_before_it_is_parsed(tmp_path, capsys):
    path = _write(tmp_path, "name: n\noutput: out\njobs:\n" + JOB + "# padding\n" * 600_000)
    assert main(["validate", path]) == 2
    assert "over the cap of 5,000,000" in capsys.readouterr().err


def test_the_runs_own_outputs_are_never_its_inputs(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "pebbles.jpg").write_bytes((DATA / "textures" / "pebbles.jpg").read_bytes())
    (tmp_path / "images" / "out" / "a").mkdir(parents=True)  # a previous run's renders, inside the inputs
    (tmp_path / "images" / "out" / "a" / "0123456789abcdef.png").write_bytes((DATA / "textures" / "dots.png").read_bytes())
    manifest = parse_manifest(_write(tmp_path, "name: n\noutput: images/out\nmodel: {weights: random}\njobs:\n"
                                               "  - {name: a, kind: texture, inputs: images/}\n"))
    assert [t.inputs["inputs"] for t in manifest.tasks] == [[str(tmp_path / "images" / "pebbles.jpg")]]


def _within(seconds, call):
    """``call()``'s outcome (value or exception), or a failure if it has not returned in ``seconds``: the
    defects here were hangs, and a hung test must fail, not hang the suite."""
    import threading

    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"no answer in {seconds} s"
    return outcome


def test_a_manifest_that_is_a_fifo_or_a_device_is_refused_at_once(tmp_path):
    import os

    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)  # nobody writes to it: reading would wait forever
    for path in (str(fifo), "/dev/zero"):  # /dev/zero would never end
        error = _within(10, lambda: parse_manifest(path)).get("error")
        assert isinstance(error, ManifestError) and "is not a regular file" in str(error), error


def test_a_manifest_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(("name: n\noutput: out\n# caf\u00e9\njobs:\n" + JOB).encode("latin-1"))
    with pytest.raises(ManifestError) as info:
        parse_manifest(str(path))
    assert "m.yaml:3: the manifest is not UTF-8 text (byte 0xe9 here): save it as UTF-8" in str(info.value)


def test_an_input_that_is_a_fifo_fails_its_read_at_once(tmp_path):
    import os

    from pipelines.storage import Storage, StorageConfig, StorageError

    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    error = _within(10, lambda: Storage(StorageConfig()).read(str(fifo))).get("error")
    assert isinstance(error, StorageError) and "is not a regular file" in str(error), error


@pytest.mark.parametrize("output, message", [
    ('""', "is empty"),
    ("~/renders", "'~/renders' starts with '~', which a manifest does not expand"),
    ("S3://bucket/run", "scheme 'S3://' is not one texfarm writes to; use s3:// (lower case)"),
    ("http://host/run", "scheme 'http://' is not one texfarm writes to; use s3:// or file://"),
])
def test_an_output_that_would_land_elsewhere_is_refused(tmp_path, output, message):
    with pytest.raises(ManifestError) as info:
        parse_manifest(_write(tmp_path, f"name: n\noutput: {output}\nmodel: {{weights: random}}\njobs:\n" + JOB))
    assert f"m.yaml:2: output: {message}" in str(info.value), str(info.value)
    assert not list(tmp_path.glob("S3*")) and not (tmp_path / "~").exists()


@pytest.mark.parametrize("job, expected", [
    ("  - {name: a, kind: mrf, inputs: IMG, preset: [a, b]}\n",
     "m.yaml:5: jobs[0].preset: must be one preset name, not ['a', 'b']; this kind's presets: random-weights"),
    ("  - {name: a, kind: texture, inputs: IMG, params: {layers: []}}\n",
     "m.yaml:5: jobs[0].params.layers: names no layer; give at least one"),
    ("  - {name: a, kind: texture, inputs: IMG, params: {layer_weights: [1, 2]}}\n",
     "m.yaml:5: jobs[0].params.layer_weights: 2 weights for 5 layers (relu1_1, pool1, pool2, pool3, pool4)"),
    ("  - {name: a, kind: style, content: IMG, style: IMG, params: {style_layers: [relu1_1], style_layer_weights: [1, 2]}}\n",
     "m.yaml:5: jobs[0].params.style_layer_weights: 2 weights for 1 layers (relu1_1)"),
    ('  - {name: "a\\n", kind: texture, inputs: IMG}\n',
     "m.yaml:5: jobs[0].name: use letters, digits"),
    ("  - {name: a, kind: texture, inputs: http://example.com/a.png}\n",
     "m.yaml:5: jobs[0].inputs: 'http://example.com/a.png': inputs are read from local paths, file:// or s3:// URIs, "
     "not http://"),
    ("  - {name: g, kind: generate, generator: {job: g}}\n",
     "m.yaml:5: jobs[0].generator.job: job 'g' names itself: a generate job takes the generators of a "
     "train_texture_net job"),
    ("  - {name: a, kind: generate, generator: {job: b}}\n  - {name: b, kind: generate, generator: {job: a}}\n",
     "m.yaml:5: jobs[0].generator.job: job 'b' is a generate job that takes generators itself (the jobs would wait "
     "on each other)"),
    ("  - {name: a, kind: texture, inputs: IMG, params: {size: 64x}}\n",
     "m.yaml:5: jobs[0].params.size: size must be N, 'WxH' or [W, H], not '64x'"),
    ("  - {name: a, kind: texture, inputs: IMG, params: {size: [64, 1.5]}}\n",
     "m.yaml:5: jobs[0].params.size: size must be N, 'WxH' or [W, H], not [64, 1.5]"),
], ids=["preset-list", "no-layers", "layer-weights", "style-layer-weights", "name-newline", "http-input",
        "self-generator", "generator-cycle", "size-64x", "size-float"])
def test_values_that_used_to_be_accepted_or_crash_are_refused_with_file_and_line(tmp_path, job, expected):
    """Each was a traceback (preset list), a failure deep inside the task (layers, weights), a name with a
    newline taken as valid, a misleading "nothing exists" (http) or "no job named" (cycles)."""
    text = "name: n\noutput: out\nmodel: {weights: random}\njobs:\n" + job.replace("IMG", str(DATA / "textures" / "pebbles.jpg"))
    with pytest.raises(ManifestError) as info:
        parse_manifest(_write(tmp_path, text))
    assert expected in str(info.value)


def test_a_model_seed_beyond_64_bits_is_refused(tmp_path):
    text = "name: n\noutput: out\nmodel: {weights: random, seed: 99999999999999999999}\njobs:\n" + JOB
    with pytest.raises(ManifestError, match=r"m.yaml:3: model.seed: 99999999999999999999 does not fit in 64 bits"):
        parse_manifest(_write(tmp_path, text))


def test_links_that_loop_neither_hang_nor_multiply_an_input(tmp_path):
    """`imgs/a/x -> ..` made one image 41 tasks (imgs/a/x/a/x/.../p.png); two such links hung `validate`."""
    import shutil

    (tmp_path / "imgs" / "a").mkdir(parents=True)
    shutil.copy(DATA / "textures" / "pebbles.jpg", tmp_path / "imgs" / "a" / "p.jpg")
    (tmp_path / "imgs" / "a" / "x").symlink_to("..")
    (tmp_path / "imgs" / "a" / "y").symlink_to("..")
    text = "name: n\noutput: out\nmodel: {weights: random}\njobs:\n  - {name: a, kind: texture, inputs: 'imgs/**/*.jpg'}\n"
    tasks = parse_manifest(_write(tmp_path, text)).tasks
    assert [t.inputs["inputs"] for t in tasks] == [[str(tmp_path / "imgs" / "a" / "p.jpg")]]


def test_a_name_with_brackets_is_taken_literally_when_the_file_exists(tmp_path):
    import shutil

    shutil.copy(DATA / "textures" / "pebbles.jpg", tmp_path / "photo[1].jpg")
    text = "name: n\noutput: out\nmodel: {weights: random}\njobs:\n  - {name: a, kind: texture, inputs: 'photo[1].jpg'}\n"
    assert [t.inputs["inputs"] for t in parse_manifest(_write(tmp_path, text)).tasks] == [[str(tmp_path / "photo[1].jpg")]]


@pytest.mark.parametrize("text, expected", [
    ("name: n\x00\noutput: out\n", "m.yaml:1: the manifest holds a control character (#x0000) that YAML does not allow"),
    ("name: n\noutput: out\njobs: " + "[" * 3000 + "]" * 3000 + "\n", "m.yaml:3: the manifest nests more than 100 levels"),
    ("name: n\noutput: out\njobs:\n  " + "- " * 3000 + "x\n", "nests too deep"),  # block lists, one line
], ids=["nul", "flow-nesting", "block-nesting"])
def test_control_characters_and_nesting_bombs_are_file_line_errors(tmp_path, text, expected):
    """Each was a traceback: yaml's ReaderError, RecursionError."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(_write(tmp_path, text))
    assert expected in str(info.value)


def test_inputs_under_the_output_are_kept_unless_they_are_the_runs_own(tmp_path, capsys):
    """An output folder equal to the input folder gave 0 tasks and exit 0: every input under the output
    was dropped. Only the run's own outputs are set aside now, and validate says how many."""
    import shutil

    from pipelines.cli import main

    shutil.copy(DATA / "textures" / "pebbles.jpg", tmp_path / "mine.jpg")
    (tmp_path / "t").mkdir()
    shutil.copy(DATA / "textures" / "pebbles.jpg", tmp_path / "t" / "0123456789abcdef.png")  # a render of a run
    (tmp_path / "_report").mkdir()
    shutil.copy(DATA / "textures" / "pebbles.jpg", tmp_path / "_report" / "sheet.jpg")
    path = _write(tmp_path, "name: n\noutput: .\nmodel: {weights: random}\njobs:\n  - {name: t, kind: texture, inputs: ./}\n")
    manifest = parse_manifest(path)
    assert [t.inputs["inputs"] for t in manifest.tasks] == [[str(tmp_path / "mine.jpg")]]
    assert main(["validate", path]) == 0
    assert "m.yaml:5: 2 files under './' are this run's own outputs" in capsys.readouterr().err


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_a_cluster_timeout_that_is_not_finite_is_refused(tmp_path, value):
    text = f"name: n\noutput: out\nmodel: {{weights: random}}\ncluster: {{start_timeout: {value}}}\njobs:\n" + JOB
    with pytest.raises(ManifestError, match=r"m.yaml:4: cluster.start_timeout: must be a finite number"):
        parse_manifest(_write(tmp_path, text))


LONG = "x" * 300


@pytest.mark.parametrize("line, key, expected", [
    ('output: "out\\0x"', "output", "holds a NUL byte"),
    (f"output: out/{LONG}", "output", "has 300 bytes, over the file system's 255"),
    ('model: {weights: "w\\0.pt"}', "model.weights", "holds a NUL byte"),
    ('INPUT"in/a\\0b.png"', "jobs[0].inputs", "holds a NUL byte"),
    (f"INPUTin/{LONG}.png", "jobs[0].inputs", "has 304 bytes, over the file system's 255"),
    (f"INPUTin/{LONG}/", "jobs[0].inputs", "has 300 bytes"),
])
def test_a_nul_byte_or_an_over_long_name_in_a_path_is_a_file_line_error(tmp_path, line, key, expected):
    """The OS's `embedded null byte` / `[Errno 36] File name too long` named no line (or crashed validation)."""
    inputs = str(DATA / "textures" / "pebbles.jpg")
    if line.startswith("INPUT"):
        inputs, line = line[len("INPUT"):], ""
    header = {"output": "output: out", "model": "model: {weights: random}"}
    for name in header:
        if line.startswith(name):
            header[name] = line
    text = (f"name: n\n{header['output']}\n{header['model']}\njobs:\n"
            f"  - {{name: a, kind: texture, inputs: {inputs}, params: {{size: 64}}}}\n")
    with pytest.raises(ManifestError) as info:
        parse_manifest(_write(tmp_path, text))
    lines = {"output": 2, "model.weights": 3, "jobs[0].inputs": 5}
    assert f"m.yaml:{lines[key]}: {key}: " in str(info.value) and expected in str(info.value), str(info.value)
