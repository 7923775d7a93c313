"""The kind contract: every kind declares its parameters with their metadata, and validation, the
render command and the docs read that declaration."""
import re

import pytest

from pipelines.cli import main
from pipelines.manifest import ManifestError, parse_manifest
from tasks.kind import MISSING, param_info
from tasks.kinds.docs import table, yaml_text
from tasks.registry import KINDS
from tests.conftest import DATA, REPO

JOB = {
    "texture": f"inputs: {DATA}/textures/pebbles.jpg",
    "mrf": f"inputs: {DATA}/textures/pebbles.jpg",
    "style": f"content: {DATA}/content/golden_gate.jpg\n    style: {DATA}/styles/cezanne.jpg",
    "mrf_style": f"content: {DATA}/content/golden_gate.jpg\n    style: {DATA}/styles/cezanne.jpg",
    "train_texture_net": f"inputs: {DATA}/textures/pebbles.jpg",
    "train_stylizer": f"style: {DATA}/styles/cezanne.jpg\n    content: {DATA}/content/golden_gate.jpg",
}


def _manifest(tmp_path, kind, params):
    roles = JOB[kind].replace("\n    ", "\n    ")
    path = tmp_path / "m.yaml"
    path.write_text(f"name: k\noutput: out\nmodel: {{weights: random}}\njobs:\n  - name: j\n    kind: {kind}\n"
                    f"    {roles}\n    params: {params}\n")
    return str(path)


@pytest.mark.parametrize("kind, params, message", [
    ("texture", "{optimizer: adamw}", "'adamw' is not one of lbfgs, adam"),
    ("texture", "{layers: [relu1_1, relu9_9]}", "'relu9_9' is not one of conv1_1"),
    ("mrf_style", "{init: nosie}", "'nosie' is not one of content, noise"),
    ("train_texture_net", "{norm: layer}", "'layer' is not one of batch, instance"),
    ("train_texture_net", "{padding: mirror}", "'mirror' is not one of circular, zeros, reflect"),
    ("train_texture_net", "{lr_decay_every: 0}", "must be at least 1 (got 0)"),
    ("style", "{style_weights: [0.5, x]}", "must be a number, not 'x'"),
    ("mrf", "{scales: [0.0]}", "must be greater than 0"),
    ("texture", "{layer_weights: [1, -2]}", "must be at least 0"),
])
def test_choices_and_ranges_come_from_the_declaration(tmp_path, kind, params, message):
    with pytest.raises(ManifestError) as info:
        parse_manifest(_manifest(tmp_path, kind, params))
    problems = [p.format("m.yaml") for p in info.value.problems]
    assert len(problems) == 1 and "jobs[0].params." in problems[0] and message in problems[0], problems


def test_float_forms_users_write_are_floats(tmp_path):
    manifest = parse_manifest(_manifest(tmp_path, "texture", "{tv_weight: 1e-3, lr: 5E-1}"))
    params = manifest.tasks[0].params
    assert params["tv_weight"] == 0.001 and isinstance(params["tv_weight"], float) and params["lr"] == 0.5


def test_every_kind_declares_every_parameter_with_help():
    for kind in KINDS.values():
        for info in param_info(kind.params).values():
            assert info.help and info.default is not MISSING, (kind.name, info.name)
        if kind.generator_from:
            assert KINDS[kind.generator_from].produces.count(".safetensors") == 1 and kind.raw


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_render_command_with_every_parameter(kind, capsys):
    with pytest.raises(SystemExit) as info:
        main(["render", kind, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, p in param_info(KINDS[kind].params).items():
        assert "--" + name.replace("_", "-") in text, name
        assert f"(default: {p.default})" in text, name


def test_readme_parameter_tables_match_the_declarations():
    """Each kind's table in the README lists exactly its declared parameters with their defaults."""
    readme = (REPO / "README.md").read_text()
    for kind in KINDS.values():
        match = re.search(rf"<!-- params:{kind.name} -->(.*?)<!-- /params -->", readme, re.S)
        assert match, f"README has no parameter table for {kind.name}"
        rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", match.group(1), re.M))
        declared = {name: yaml_text(p.default) for name, p in param_info(kind.params).items()}
        assert rows == declared, kind.name
        # The whole block, help texts and presets too, is what the generator writes.
        assert match.group(0) == table(kind.name), f"{kind.name}: run python -m tasks.kinds.docs README.md"
