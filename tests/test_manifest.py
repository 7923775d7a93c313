import textwrap

import pytest

from pipelines.cli import main
from pipelines.manifest import ManifestError, parse_manifest
from tests.conftest import DATA

GOOD = f"""\
name: demo
output: out
model: {{weights: random}}
jobs:
  - name: pebbles
    kind: texture
    inputs: {DATA}/textures/pebbles.jpg
    seeds: 3
    params: {{size: 64, iterations: 10}}
  - name: styles
    kind: style
    content: [{DATA}/content/golden_gate.jpg]
    style: {DATA}/styles/*.jpg
    seeds: [0, 5]
    params: {{size: 64}}
    sweep: {{style_scale: [0.5, 1.0, 2.0], style_weight: [1.0, 10.0]}}
"""


def _write(tmp_path, text, name="m.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _problems(tmp_path, text):
    with pytest.raises(ManifestError) as info:
        parse_manifest(_write(tmp_path, text))
    return [p.format("m.yaml") for p in info.value.problems]


def test_expands_jobs_seeds_sweeps_and_globs(tmp_path):
    manifest = parse_manifest(_write(tmp_path, GOOD))
    assert manifest.job_counts() == {"pebbles": 3, "styles": 1 * 3 * 2 * 2}
    style_task = next(t for t in manifest.tasks if t.job == "styles")
    assert len(style_task.inputs["style"]) == 2  # the glob matched both style images, shared by each task
    assert manifest.output == str(tmp_path / "out")  # relative to the manifest's folder
    assert len({t.task_id for t in manifest.tasks}) == len(manifest.tasks)
    assert all(t.output_prefix == f"{manifest.output}/{t.job}/{t.task_id}" for t in manifest.tasks)


def test_task_ids_are_deterministic_and_follow_parameters(tmp_path):
    first = [t.task_id for t in parse_manifest(_write(tmp_path, GOOD)).tasks]
    again = [t.task_id for t in parse_manifest(_write(tmp_path, GOOD, "copy.yaml")).tasks]
    changed = parse_manifest(_write(tmp_path, GOOD.replace("iterations: 10", "iterations: 11"), "c.yaml")).tasks
    assert first == again
    assert [t.task_id for t in changed][:3] != first[:3] and [t.task_id for t in changed][3:] == first[3:]


def test_unknown_keys_get_line_and_suggestion(tmp_path):
    text = GOOD.replace("params: {size: 64, iterations: 10}", "params: {sise: 64, iterations: 10}")
    text = text.replace("    seeds: 3\n", "    seeds: 3\n    sedes: 4\n")
    problems = _problems(tmp_path, text)
    assert any(p.startswith("m.yaml:10: jobs[0].params.sise: unknown parameter") and "'size'" in p for p in problems)
    assert any(p.startswith("m.yaml:9: jobs[0].sedes: unknown key") and "'seeds'" in p for p in problems)


@pytest.mark.parametrize("edit, expected", [
    (("seeds: 3", "seeds: three"), "m.yaml:8: jobs[0].seeds: must be a count"),
    (("kind: texture", "kind: textrue"), "m.yaml:6: jobs[0].kind: unknown kind 'textrue'; did you mean 'texture'?"),
    (("name: styles", "name: pebbles"), "m.yaml:10: jobs[1].name: duplicate job name 'pebbles' (first used on line 5)"),
    (("name: pebbles", "name: ../escape"), "m.yaml:5: jobs[0].name: use letters, digits"),
    (("size: 64, iterations", "size: 100000, iterations"), "m.yaml:9: jobs[0].params.size: 100000x100000 is over the cap"),
    (("iterations: 10", "iterations: -3"), "m.yaml:9: jobs[0].params.iterations: must be at least 1 (got -3)"),
    (("iterations: 10", "iterations: ten"), "m.yaml:9: jobs[0].params.iterations: must be an integer, not 'ten'"),
    (("pebbles.jpg", "nothing-here.jpg"), "m.yaml:7: jobs[0].inputs: "),
    (("style: ", "stile: "), "m.yaml:10: jobs[1]: missing required key 'style'"),
    (("output: out\n", ""), "m.yaml:1: missing required key 'output'"),
    (("[0.5, 1.0, 2.0]", "0.5"), "m.yaml:16: jobs[1].sweep.style_scale: must be a non-empty list"),
])
def test_each_problem_names_line_and_key(tmp_path, edit, expected):
    problems = _problems(tmp_path, GOOD.replace(*edit))
    assert any(p.startswith(expected) for p in problems), problems


def test_yaml_syntax_error_names_the_line(tmp_path):
    problems = _problems(tmp_path, GOOD.replace("seeds: [0, 5]", "seeds: [0, 5"))
    assert problems[0].startswith("m.yaml:1") or "YAML syntax error" in problems[0]
    assert any("YAML syntax error" in p for p in problems)


def test_all_problems_are_reported_at_once(tmp_path):
    text = GOOD.replace("kind: texture", "kind: nope").replace("seeds: [0, 5]", "seeds: -1")
    assert len(_problems(tmp_path, text)) == 2


def test_validate_command_exit_codes(tmp_path, capsys):
    assert main(["validate", _write(tmp_path, GOOD)]) == 0
    assert "pebbles" in capsys.readouterr().out
    assert main(["validate", _write(tmp_path, GOOD.replace("kind: style", "kind: styel"), "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:11: jobs[1].kind: unknown kind 'styel'; did you mean 'style'?" in err


def test_shipped_manifests_validate():
    from tests.conftest import REPO

    for path in sorted((REPO / "manifests").glob("*.yaml")):
        if "s3://" not in path.read_text():
            assert parse_manifest(str(path)).tasks, path


@pytest.mark.parametrize("top", ["cluster: {workers: -1}", "storage: {max_attempts: lots}", "model: {weights: 3}",
                                 "limits: {max_tasks: 0}", "bogus: 1"])
def test_a_broken_top_level_section_does_not_hide_the_jobs_problems(tmp_path, top):
    text = GOOD.replace("model: {weights: random}\n", f"model: {{weights: random}}\n{top}\n") \
        if not top.startswith("model") else GOOD.replace("model: {weights: random}", top)
    problems = _problems(tmp_path, text.replace("iterations: 10", "iterations: ten"))
    assert any("jobs[0].params.iterations" in p for p in problems), problems
    assert any(p.split(": ", 2)[1].split(".")[0].split("[")[0] in ("cluster", "storage", "model", "limits", "bogus")
               for p in problems), problems


MRF_JOB = f"""\
name: demo
output: out
model: {{weights: random}}
jobs:
  - name: dots
    kind: mrf
    inputs: {DATA}/textures/dots.png
    PRESET
    params: {{size: 64, iterations: 10}}
"""


def test_a_preset_sets_its_values_and_the_jobs_params_win(tmp_path):
    """Defaults are for ImageNet weights; `preset: random-weights` brings the values random weights
    need, in the task's params (so in its id), and a value the job names itself overrides it."""
    plain = parse_manifest(_write(tmp_path, MRF_JOB.replace("PRESET", ""), "a.yaml")).tasks[0]
    preset = parse_manifest(_write(tmp_path, MRF_JOB.replace("PRESET", "preset: random-weights"), "b.yaml")).tasks[0]
    assert "tv_weight" not in plain.params and preset.params["tv_weight"] == 1.0
    assert preset.task_id != plain.task_id
    own = MRF_JOB.replace("PRESET", "preset: random-weights").replace("iterations: 10", "iterations: 10, tv_weight: 0.5")
    assert parse_manifest(_write(tmp_path, own, "c.yaml")).tasks[0].params["tv_weight"] == 0.5


def test_an_unknown_preset_names_the_kinds_presets(tmp_path):
    problems = _problems(tmp_path, MRF_JOB.replace("PRESET", "preset: random"))
    assert any("preset" in p and "random-weights" in p and "'random'" in p for p in problems), problems
    swd = MRF_JOB.replace("kind: mrf", "kind: swd").replace("PRESET", "preset: random-weights")
    problems = _problems(tmp_path, swd)  # a kind whose defaults need no preset
    assert any("kind 'swd' has no preset" in p and "none" in p for p in problems), problems


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_a_non_finite_number_is_refused_with_its_line(tmp_path, value):
    problems = _problems(tmp_path, GOOD.replace("iterations: 10}", f"iterations: 10, tv_weight: {value}}}", 1))
    assert any(p.startswith("m.yaml:9: jobs[0].params.tv_weight: must be a") for p in problems), problems


def test_records_are_strict_json_even_when_a_loss_is_not_finite():
    import json

    from pipelines.records import dumps

    text = dumps({"loss_end": float("nan"), "losses": [1.0, float("inf")], "nested": {"x": float("-inf")}})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in a record")) == {
        "loss_end": None, "losses": [1.0, None], "nested": {"x": None}}
