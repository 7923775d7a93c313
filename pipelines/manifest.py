"""Manifest parsing, validation and expansion into task specs.

Validation collects every problem (file, line, key, fix) before anything starts. Expansion is
deterministic: the same manifest gives the same task ids, so a re-run resumes.
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from tasks.kind import Kind, check_param, param_info
from tasks.model import LAYERS, ModelSettings
from tasks.params import parse_size
from tasks.registry import KINDS

from .storage import (IMAGE_SUFFIXES, Storage, StorageConfig, StorageError, has_glob, is_s3, join, path_problem,
                      read_regular_file)
from .words import counted
from .yamlmarks import YamlError, load_with_lines

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_NAMES = {"catalog.parquet": "catalog"}  # beside the job folders (the report is `_report`: no job name starts with "_")
DEFAULT_MAX_SIZE = 4096  # longest output side accepted; raise it with limits.max_size
DEFAULT_MAX_TASKS = 100_000  # tasks one manifest may expand to; raise it with limits.max_tasks
MAX_MANIFEST_BYTES = 5_000_000  # a manifest is a recipe: 5 MB of YAML is already ~40,000 jobs
MAX_SEED = 2**63  # seeds are stored as int64 (catalog) and fed to torch's generator

TOP_KEYS = {"name", "output", "storage", "cluster", "model", "limits", "jobs"}
STORAGE_KEYS = {f.name for f in fields(StorageConfig)}
CLUSTER_KEYS = {"workers", "gpus_per_worker", "cpus_per_worker", "max_retries", "address", "batch_size", "pipeline_depth",
                "restart_timeout", "start_timeout", "idle_timeout"}
MODEL_KEYS = {"weights", "pooling", "seed", "precision", "channels_last", "compile"}
LIMIT_KEYS = {"max_size", "max_input_pixels", "max_exemplar_pixels", "max_tasks"}
JOB_KEYS = {"name", "kind", "seeds", "params", "preset", "sweep", "format", "quality"}
IMAGE_FORMATS = ("png", "png16", "jpeg", "webp")  # tasks/imageio.py FORMATS


@dataclass
class Problem:
    line: int
    key: str
    message: str

    def format(self, filename: str) -> str:
        where = f"{filename}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ManifestError(ValueError):
    """Every problem found in a manifest, each naming file, line and key."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems
        super().__init__("\n".join(p.format(filename) for p in problems))


@dataclass
class TaskSpec:
    task_id: str
    job: str
    kind: str
    seed: int
    inputs: dict[str, list[str]]
    params: dict[str, Any]
    output_prefix: str  # {output}/{job}/{task_id}
    depends_on: list[str] = field(default_factory=list)  # task ids that must finish first
    clear_failed: bool = False  # a failed record of an earlier run is there, to delete on success
    image: dict = field(default_factory=dict)  # {format, quality} when not the default PNG

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Manifest:
    path: str
    name: str
    output: str
    storage: dict
    cluster: dict
    model: dict
    limits: dict
    jobs: list[dict]
    tasks: list[TaskSpec] = field(default_factory=list)
    weights_id: str = ""  # of the weights as the manifest names them (a relative file stays relative): in task ids
    notes: list[str] = field(default_factory=list)  # said before a run: what validation set aside, and why

    @property
    def settings(self) -> ModelSettings:
        return ModelSettings(**self.model)

    def job_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self.tasks:
            counts[task.job] = counts.get(task.job, 0) + 1
        return counts


def _key(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _suggest(word: str, choices: set[str]) -> str:
    match = difflib.get_close_matches(str(word), sorted(choices), n=1)
    return f"; did you mean '{match[0]}'?" if match else f"; allowed keys: {', '.join(sorted(choices))}"


class _Validator:
    def __init__(self, filename: str, lines: dict[tuple, int], base_dir: Path) -> None:
        self.filename = filename
        self.lines = lines
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.relative: set[str] = set()  # resolved local paths the manifest named relative to its folder
        self.output_relative = False
        self.output: Optional[str] = None
        self.max_tasks = DEFAULT_MAX_TASKS
        self.task_count = 0
        self.job_kinds: dict[str, Any] = {}  # every job's kind by name (a generator reference may point ahead)
        self.notes: list[str] = []
        self.s3_unchecked = False  # the S3 endpoint cannot be reached: s3:// inputs are not looked up

    def line(self, path: tuple) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def add(self, path: tuple, message: str) -> None:
        self.problems.append(Problem(self.line(path), _key(path), message))

    def mapping(self, value: Any, path: tuple, allowed: set[str]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"must be a mapping (key: value lines), not {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                self.add(path + (key,), f"unknown key{_suggest(key, allowed)}")
        return value

    def typed(self, mapping: dict, key: str, path: tuple, types: tuple, what: str, default: Any = None,
              required: bool = False) -> Any:
        if key not in mapping:
            if required:
                self.add(path, f"missing required key '{key}' ({what})")
            return default
        value = mapping[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            self.add(path + (key,), f"must be {what}, not {type(value).__name__} {value!r}")
            return default
        return value

    def resolve(self, uri: str) -> str:
        """Relative local paths are relative to the manifest's folder."""
        if not is_relative(uri):
            return uri
        return str((self.base_dir / uri).resolve()) + ("/" if uri.endswith("/") else "")

    def portable(self, uri: str) -> str:
        """How ``uri`` enters task ids: a path the manifest named relative to its folder stays relative,
        so the same manifest gives the same ids from any folder, machine or `texfarm submit`."""
        return os.path.relpath(uri, self.base_dir) if uri in self.relative else uri


def is_relative(uri: str) -> bool:
    return not (is_s3(uri) or uri.startswith("file://") or Path(uri).is_absolute())


def _task_id(v: _Validator, job: str, kind: str, inputs: dict[str, list[str]], params: dict, seed: int,
             weights: str, image: Optional[dict] = None, contents: Optional[dict] = None) -> str:
    """A hash of what defines the result and where it goes: the job is part of it, so two jobs that
    differ only by name are two tasks with two outputs (completion, catalog rows and dependencies are
    keyed by task id; without the job a second such job was taken as done and never written)."""
    named = {role: [v.portable(uri) for uri in uris] for role, uris in inputs.items()}
    what = {"job": job, "kind": kind, "inputs": named, "params": params, "seed": seed, "weights": weights}
    if image:  # another file format is another result; the default (PNG) leaves ids as they were
        what["image"] = image
    if contents:  # inputs a user edits and renders again under the same name (a doodle)
        what["contents"] = contents
    blob = json.dumps(what, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _content_hash(v: _Validator, storage: Storage, uri: str, path: tuple) -> str:
    """A hash of a (small) input's bytes, so an edited doodle renders again under its old name."""
    try:
        return hashlib.sha256(storage.read(uri)).hexdigest()[:16]
    except StorageError as exc:
        v.add(path, str(exc))
        return ""


def _check_params(v: _Validator, kind: Kind, params: dict, path: tuple, max_size: int) -> dict:
    """Each value checked against its declaration (type, range, choices); returns the values as the task
    will get them (`1e-3` written without a dot is a float, as the user meant)."""
    info = param_info(kind.params)
    checked = {}
    for key, value in params.items():
        if key not in info:
            v.add(path + (key,), f"unknown parameter for kind '{kind.name}'{_suggest(key, set(info))}")
            continue
        try:
            checked[key] = check_param(kind.params, key, value, LAYERS)
        except ValueError as exc:
            v.add(path + (key,), f"{exc}; {info[key].help}" if info[key].help else str(exc))
    if "size" in checked:
        try:
            h, w = parse_size(checked["size"])
            if max(h, w) > max_size:
                v.add(path + ("size",), f"{w}x{h} is over the cap of {max_size} px; lower it or raise limits.max_size")
        except ValueError as exc:
            v.add(path + ("size",), str(exc))
    _check_layer_lists(v, info, checked, path)
    return checked


def _check_layer_lists(v: _Validator, info: dict, checked: dict, path: tuple) -> None:
    """A layer list names at least one layer, and its weights (`layer_weights` for `layers`,
    `style_layer_weights` for `style_layers`) are one per layer: both failed only inside the task."""
    for key, value in checked.items():
        if info[key].choices == ("<layer>",) and isinstance(value, list) and not value:
            v.add(path + (key,), "names no layer; give at least one (or remove the key for the default)")
    for weights_key in (k for k in info if k.endswith("layer_weights")):
        layers_key = weights_key.replace("layer_weights", "layers")
        weights = checked.get(weights_key)
        if weights is None or layers_key not in info:
            continue
        layers = checked.get(layers_key, info[layers_key].default)
        if isinstance(layers, list) and len(weights) != len(layers):
            v.add(path + (weights_key,), f"{len(weights)} weights for {len(layers)} layers ({', '.join(layers)}): "
                                         f"give one per layer of `{layers_key}`")


def _expand_inputs(v: _Validator, storage: Optional[Storage], value: Any, path: tuple) -> list[str]:
    patterns = value if isinstance(value, list) else [value]
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        v.add(path, "must be a URI, a glob, a folder/prefix ending in '/', or a list of them")
        return []
    if storage is None:  # the storage section itself has problems: inputs cannot be looked up
        return []
    uris: list[str] = []
    for i, pattern in enumerate(patterns):
        item_path = path + (i,) if isinstance(value, list) else path
        scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", pattern)
        if scheme and scheme.group(1) not in ("s3", "file"):
            v.add(item_path, f"{pattern!r}: inputs are read from local paths, file:// or s3:// URIs, not "
                             f"{scheme.group(1)}://; download it first (or stage it in a bucket)")
            continue
        if path_problem(pattern):  # before resolving: the OS's own error names no line
            v.add(item_path, path_problem(pattern))
            continue
        if v.s3_unchecked and is_s3(v.resolve(pattern)):
            continue
        try:
            found = storage.expand(v.resolve(pattern))
        except StorageError as exc:
            v.add(item_path, str(exc))
            continue
        if not found:
            hint = "no file matches the glob" if has_glob(pattern) else _empty_hint(storage, v.resolve(pattern))
            fix = "" if "folder" in hint else "; check the path, or end a folder/prefix with '/'"
            v.add(item_path, f"{pattern!r} matches no input ({hint}){fix}")
        if v.output:  # the run's own outputs (renders, records, the report) are never its inputs
            kept = [uri for uri in found if not _own_output(uri, v.output)]
            if len(kept) < len(found):
                v.notes.append(f"{v.filename}:{v.line(item_path)}: {counted(len(found) - len(kept), 'file')} under {pattern!r} "
                               "are this run's own outputs (renders, records, the report) and are not inputs")
            found = kept
        if is_relative(pattern):
            v.relative.update(found)
        uris.extend(found)
    return list(dict.fromkeys(uris))


_OWN_OUTPUT = re.compile(r"^(_report/.*|catalog\.parquet|[^/]+/[0-9a-f]{16}([._].*)?)$")


def _own_output(uri: str, output: str) -> bool:
    """Whether ``uri`` is one of the run's own outputs: `{job}/{task_id}...` (renders, records, checkpoints),
    `_report/...`, `catalog.parquet`. Other files under the output folder (a user's own images) are inputs."""
    return uri.startswith(output + "/") and bool(_OWN_OUTPUT.match(uri[len(output) + 1:]))


def _empty_hint(storage: Storage, uri: str) -> str:
    """Why a folder/prefix or path gave no input: nothing there, or a folder without image files."""
    local_dir = not is_s3(uri) and os.path.isdir(uri.removeprefix("file://"))
    try:
        present = storage.list(uri.rstrip("/") + "/") if uri.endswith("/") or local_dir else []
    except StorageError:
        present = []
    if present:
        return (f"it is a folder of {counted(len(present), 'file')} but none is an image "
                f"({', '.join(sorted(set(IMAGE_SUFFIXES)))})")
    if local_dir:
        return "it is an empty folder"
    return "nothing exists at that path"


def _seeds(v: _Validator, job: dict, path: tuple, max_tasks: int) -> list[int]:
    seeds = job.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        if seeds > max_tasks:  # checked before the list is built: `seeds: 100000000` must not eat memory
            v.add(path + ("seeds",), f"{seeds} seeds is over the cap of {max_tasks} tasks; raise limits.max_tasks")
            return []
        return list(range(seeds))
    if isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        if not all(0 <= s < MAX_SEED for s in seeds):
            v.add(path + ("seeds",), "each seed must be between 0 and 2^63 - 1")
            return []
        return list(dict.fromkeys(seeds))
    v.add(path + ("seeds",), f"must be a count (>= 1) or a list of integer seeds, not {seeds!r}")
    return []


def _sweep(v: _Validator, kind: Kind, sweep: Any, path: tuple, max_size: int) -> list[dict]:
    if sweep is None:
        return [{}]
    if not isinstance(sweep, dict) or not sweep:
        v.add(path, "must map parameter names to lists of values, e.g. {style_scale: [0.5, 1.0]}")
        return [{}]
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            v.add(path + (key,), "must be a non-empty list of values to sweep")
            return [{}]
        sweep = {**sweep, key: [_check_params(v, kind, {key: value}, path, max_size).get(key, value)
                                for value in values]}
    if math.prod(len(values) for values in sweep.values()) > v.max_tasks:
        v.add(path, f"the sweep has over {v.max_tasks:,} points, the cap of tasks; raise limits.max_tasks")
        return [{}]
    return [dict(zip(sweep, values)) for values in itertools.product(*sweep.values())]


def _generator_reference(v: _Validator, value: Any, path: tuple, kind: str, jobs: dict[str, tuple[str, list]],
                         own: Optional[str] = None):
    """{job: NAME} → (URIs of NAME's trained generators, their task ids), or None if not a reference. A kind
    whose declaration names `generator_from` may name a job of that kind of the same manifest."""
    if not isinstance(value, dict):
        return None
    if set(value) != {"job"} or not isinstance(value["job"], str):
        v.add(path, "must be generator URIs, or {job: NAME} naming a training job of this manifest")
        return [], []
    name = value["job"]
    wanted = KINDS[kind].generator_from
    if name == own:
        v.add(path + ("job",), f"job {name!r} names itself: a {kind} job takes the generators of a {wanted} job")
        return [], []
    if name not in jobs and name in v.job_kinds:  # a job that itself waits for generators: a cycle or a chain
        v.add(path + ("job",), f"job {name!r} is a {v.job_kinds[name]} job that takes generators itself (the jobs "
                               f"would wait on each other); a {kind} job needs a {wanted} job")
        return [], []
    if name not in jobs:
        v.add(path + ("job",), f"no job named {name!r} in this manifest{_suggest(name, set(v.job_kinds) or set(jobs))}")
        return [], []
    trainer_kind, trainer_tasks = jobs[name]
    if trainer_kind != wanted:
        v.add(path + ("job",), f"job {name!r} is a {trainer_kind} job; a {kind} job needs a {wanted} job")
        return [], []
    uris = [t.output_prefix + ".safetensors" for t in trainer_tasks]
    if v.output_relative:
        v.relative.update(uris)
    return uris, [t.task_id for t in trainer_tasks]


def _image_format(v: _Validator, job: dict, path: tuple) -> dict:
    """The job's `format` (png, png16, jpeg, webp) and `quality` (jpeg/webp, 1..100); {} for plain PNG."""
    fmt = job.get("format", "png")
    if fmt not in IMAGE_FORMATS:
        v.add(path + ("format",), f"must be one of {', '.join(IMAGE_FORMATS)}, not {fmt!r}")
        return {}
    quality = job.get("quality", 95)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        v.add(path + ("quality",), f"must be an integer from 1 to 100, not {quality!r}")
        return {}
    if "quality" in job and fmt not in ("jpeg", "webp"):
        v.add(path + ("quality",), f"applies to jpeg and webp, not {fmt}; remove it or set format")
    if fmt == "png":
        return {}
    return {"format": fmt, "quality": quality} if fmt in ("jpeg", "webp") else {"format": fmt}


def _uses_trainer(job: Any) -> bool:
    kind = KINDS.get(job.get("kind")) if isinstance(job, dict) and isinstance(job.get("kind"), str) else None
    return bool(kind and kind.generator_from and any(isinstance(job.get(role), dict) for role in kind.raw))


def _job_tasks(v: _Validator, storage: Storage, job: Any, path: tuple, output: str, weights: str,
               max_size: int, seen_names: dict[str, int], trainers: dict[str, tuple[str, list]]) -> list[TaskSpec]:
    if not isinstance(job, dict):
        v.add(path, "each job must be a mapping with name, kind, inputs, seeds and params")
        return []
    name = v.typed(job, "name", path, (str,), "a job name", required=True)
    kind_name = v.typed(job, "kind", path, (str,), "a task kind", required=True)
    if name is not None:
        if not NAME_RE.fullmatch(name):  # match() would let a trailing newline through ($)
            v.add(path + ("name",), "use letters, digits, '.', '_' and '-' only (it becomes part of output keys)")
        elif name in RESERVED_NAMES:
            v.add(path + ("name",), f"{name!r} is reserved for the run's {RESERVED_NAMES[name]}; choose another name")
        elif name in seen_names:
            v.add(path + ("name",), f"duplicate job name {name!r} (first used on line {seen_names[name]}); give each job its own name")
        else:
            seen_names[name] = v.line(path + ("name",))
    if kind_name is None:
        return []
    if kind_name not in KINDS:
        v.add(path + ("kind",), f"unknown kind {kind_name!r}{_suggest(kind_name, set(KINDS))}")
        return []
    kind = KINDS[kind_name]
    v.mapping(job, path, JOB_KEYS | {kind.fanout, *kind.shared} - {""})
    roles, depends = {}, {}
    for role in (r for r in (kind.fanout, *kind.shared) if r):  # mashup has no fan-out role
        if role not in job:
            if role not in kind.optional:
                v.add(path, f"missing required key '{role}' (inputs for kind '{kind_name}')")
            continue
        reference = _generator_reference(v, job[role], path + (role,), kind_name, trainers, name) \
            if role in kind.raw and kind.generator_from else None
        if reference is not None:
            roles[role] = reference[0]
            depends.update(zip(*reference))
        else:
            roles[role] = _expand_inputs(v, storage, job[role], path + (role,))
            if role in kind.single and len(roles[role]) > 1:
                v.add(path + (role,), f"names {len(roles[role])} images; '{role}' takes one (the first two: "
                                      f"{', '.join(roles[role][:2])})")
    params = job.get("params") or {}
    if not isinstance(params, dict):
        v.add(path + ("params",), "must be a mapping of parameter names to values")
        params = {}
    preset = job.get("preset")
    if preset is not None and not isinstance(preset, str):
        v.add(path + ("preset",), f"must be one preset name, not {preset!r}; this kind's presets: "
                                  f"{', '.join(sorted(kind.presets)) or 'none'}")
        preset = None
    try:  # a preset's values first; the job's own params override them
        params = {**kind.preset(preset), **params}
    except ValueError as exc:
        v.add(path + ("preset",), f"{exc}; or remove the key (the defaults are for ImageNet weights)")
    params = _check_params(v, kind, params, path + ("params",), max_size)
    image = _image_format(v, job, path)
    combos = _sweep(v, kind, job.get("sweep"), path + ("sweep",), max_size)
    seeds = _seeds(v, job, path, v.max_tasks)
    if v.problems or name is None:
        return []
    # One task per fan-out input, per generator file, per sweep point, per seed.
    per_task = [role for role in (kind.fanout, *kind.shared)
                if role in roles and (role == kind.fanout or role in kind.raw or role in kind.fans)]
    v.task_count += math.prod(len(roles[role]) for role in per_task) * len(combos) * len(seeds)
    if v.task_count > v.max_tasks:  # counted before anything is built
        v.add(path, f"the manifest expands to over {v.max_tasks:,} tasks (at this job); raise limits.max_tasks, "
                    "or split the run")
        return []
    tasks = []
    for picks in itertools.product(*(roles[role] for role in per_task)):
        inputs = {**{role: roles[role] for role in kind.shared if role in roles},
                  **{role: [uri] for role, uri in zip(per_task, picks)}}
        needs = sorted(depends[uri] for uri in picks if uri in depends)
        contents = {role: _content_hash(v, storage, uri, path + (role,))
                    for role, uri in zip(per_task, picks) if role in kind.fans}
        for combo in combos:
            task_params = {**params, **combo}
            for seed in seeds:
                task_id = _task_id(v, name, kind_name, inputs, task_params, seed, weights, image, contents)
                tasks.append(TaskSpec(task_id, name, kind_name, seed, inputs, task_params,
                                      join(output, name, task_id), needs, image=image or {}))
    return tasks


def _check_cluster(v: _Validator, cluster: dict) -> None:
    _check_workers(v, cluster.get("workers", "auto"))
    gpus = cluster.get("gpus_per_worker", "auto")
    if gpus != "auto" and (isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or gpus < 0):
        v.add(("cluster", "gpus_per_worker"), f"must be 'auto', 0 (CPU workers) or a number of GPUs (a fraction packs "
                                              f"several workers per GPU), not {gpus!r}")
    for key, types, what, low, strict in (
            ("cpus_per_worker", (int, float), "a number of CPUs", 0, True),
            ("max_retries", (int,), "a retry count", 0, False),
            ("batch_size", (int,), "a number of same-job seeds rendered together", 1, False),
            ("pipeline_depth", (int,), "calls in flight per actor (GPU default 2, CPU 1)", 1, False),
            ("restart_timeout", (int, float), "seconds a dead worker may take to come back", 0, True),
            ("start_timeout", (int, float), "seconds to wait for a first worker to be placed", 0, True),
            ("idle_timeout", (int, float), "seconds an idle worker beyond the work left keeps its GPU", 0, False)):
        value = v.typed(cluster, key, ("cluster",), types, what)
        if isinstance(value, float) and not math.isfinite(value):  # .nan passes every comparison; .inf waits forever
            v.add(("cluster", key), f"must be a finite number ({what}), not {value!r}")
        elif value is not None and (value <= low if strict else value < low):
            v.add(("cluster", key), f"must be {'above' if strict else 'at least'} {low} ({what}), not {value!r}")


def _output_problem(output: str) -> Optional[str]:
    """What is wrong with an output that would otherwise land somewhere the user did not mean: an
    empty one (0 tasks, exit 0), `~/x` (a literal `~` folder), a scheme in capitals or one we do not
    write (a local folder named `S3:` or `http:`)."""
    if not output.strip():
        return "is empty: give an s3:// prefix or a local folder"
    if output.startswith("~"):
        return f"{output!r} starts with '~', which a manifest does not expand: write the folder out (absolute, or relative to the manifest)"
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", output)
    if scheme and scheme.group(1) not in ("s3", "file"):
        known = "s3:// (lower case)" if scheme.group(1).lower() == "s3" else "s3:// or file://"
        return f"scheme '{scheme.group(1)}://' is not one texfarm writes to; use {known}, or a local folder"
    return path_problem(output)


def _count(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_workers(v: _Validator, workers: Any) -> None:
    """A count (that many at once), `auto` (as many as the cluster can have) or a range {min, max}."""
    if workers == "auto" or _count(workers, 1):
        return
    if not isinstance(workers, dict):
        v.add(("cluster", "workers"), f"must be 'auto', a positive count or a range {{min: M, max: N}}, not {workers!r}")
        return
    v.mapping(workers, ("cluster", "workers"), {"min", "max"})
    low, high = workers.get("min", 0), workers.get("max", "auto")
    if not _count(low, 0):
        v.add(("cluster", "workers", "min"), f"must be a count of workers kept even when idle (0 or more), not {low!r}")
    if high != "auto" and not _count(high, 1):
        v.add(("cluster", "workers", "max"), f"must be 'auto' or a positive count of workers, not {high!r}")
    elif _count(low, 0) and high != "auto" and low > high:
        v.add(("cluster", "workers"), f"min ({low}) must not be above max ({high})")


def _check_storage(v: _Validator, storage: dict) -> None:
    v.typed(storage, "endpoint_url", ("storage",), (str,), "an http(s):// URL")
    v.typed(storage, "region", ("storage",), (str,), "a region name, e.g. eu-west-1")
    for key in ("max_attempts", "max_concurrency"):
        value = v.typed(storage, key, ("storage",), (int,), "a positive count")
        if value is not None and value < 1:
            v.add(("storage", key), f"must be a positive count, not {value!r}")


def _check_limits(v: _Validator, limits: dict) -> None:
    for key in LIMIT_KEYS:
        value = v.typed(limits, key, ("limits",), (int,), "a positive count")
        if value is not None and value < 1:
            v.add(("limits", key), f"must be a positive count, not {value!r}")


def _int64(v: _Validator, value: Any, path: tuple) -> Any:
    """A seed torch can take (it stores seeds as 64-bit integers)."""
    if isinstance(value, int) and not -(2 ** 63) <= value < 2 ** 64:
        v.add(path, f"{value} does not fit in 64 bits; use a smaller seed")
        return 0
    return value


def _model_settings(v: _Validator, model: dict) -> dict:
    """The model block with its defaults; a weights path is resolved like any other path."""
    weights = v.typed(model, "weights", ("model",), (str,), "imagenet, random, or a path / s3:// URI", "imagenet")
    pooling = v.typed(model, "pooling", ("model",), (str,), "avg or max", "avg")
    if pooling not in ("avg", "max"):
        v.add(("model", "pooling"), f"must be 'avg' or 'max', not {pooling!r}")
    precision = v.typed(model, "precision", ("model",), (str,), "fp32, bf16 or fp16", "fp32")
    if precision not in ("fp32", "bf16", "fp16"):
        v.add(("model", "precision"), f"must be fp32, bf16 or fp16, not {precision!r}")
    if weights not in ("imagenet", "random", None) and path_problem(weights):
        v.add(("model", "weights"), path_problem(weights))
    elif weights not in ("imagenet", "random", None):
        relative, weights = is_relative(weights), v.resolve(weights)
        if relative:
            v.relative.add(weights)
    return {"weights": weights, "pooling": pooling, "precision": precision,
            "seed": _int64(v, v.typed(model, "seed", ("model",), (int,), "an integer seed for random weights", 0),
                           ("model", "seed")),
            "channels_last": v.typed(model, "channels_last", ("model",), (bool,), "true or false", False),
            "compile": v.typed(model, "compile", ("model",), (bool,), "true or false", False)}


def text_line_of(exc: UnicodeDecodeError) -> int:
    """The 1-based line of the byte a decode failed on."""
    return exc.object[:exc.start].count(b"\n") + 1


def parse_manifest(path: str, storage: Optional[Storage] = None) -> Manifest:
    """Read, validate and expand a manifest; raise ManifestError listing every problem."""
    filename = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(filename, [Problem(1, "", f"the manifest is {size:,} bytes, over the cap of "
                                                           f"{MAX_MANIFEST_BYTES:,}: describe inputs with globs or "
                                                           "prefixes and seeds with counts, or split the run")])
        text = read_regular_file(Path(path)).decode("utf-8")
    except OSError as exc:
        raise ManifestError(filename, [Problem(1, "", f"cannot read the manifest: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        line = text_line_of(exc)
        raise ManifestError(filename, [Problem(line, "", f"the manifest is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                                                         "here): save it as UTF-8")]) from None
    try:
        data, lines = load_with_lines(text)
    except YamlError as exc:
        raise ManifestError(filename, [Problem(exc.line, "", str(exc))]) from None
    v = _Validator(filename, lines, Path(path).resolve().parent)
    if not isinstance(data, dict):
        raise ManifestError(filename, [Problem(1, "", "a manifest is a mapping with name, output and jobs")])
    v.mapping(data, (), TOP_KEYS)
    name = v.typed(data, "name", (), (str,), "the run's name", required=True)
    output = v.typed(data, "output", (), (str,), "an s3:// prefix or a local folder", required=True)
    storage_cfg = v.mapping(data.get("storage"), ("storage",), STORAGE_KEYS)
    cluster = v.mapping(data.get("cluster"), ("cluster",), CLUSTER_KEYS)
    model = v.mapping(data.get("model"), ("model",), MODEL_KEYS)
    limits = v.mapping(data.get("limits"), ("limits",), LIMIT_KEYS)
    _check_cluster(v, cluster)
    _check_storage(v, storage_cfg)
    _check_limits(v, limits)
    model = _model_settings(v, model)
    max_size = limits.get("max_size", DEFAULT_MAX_SIZE)
    v.max_tasks = limits.get("max_tasks", DEFAULT_MAX_TASKS)
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        v.add(("jobs",), "must be a non-empty list of jobs")
        jobs = []
    if output is not None and _output_problem(output):
        v.add(("output",), _output_problem(output))
        output = None
    if output is not None:
        v.output_relative = is_relative(output)
        output = v.resolve(output).rstrip("/")
        if is_s3(output) and any(part in (".", "..") for part in output[len("s3://"):].split("/")):
            v.add(("output",), "'.' and '..' are not allowed in an s3:// output (keys are literal); write the "
                               "prefix out")
        v.output = output
    # With a broken top-level section the jobs are still checked (kinds, params, seeds, sweeps), only
    # not against storage, so one `validate` shows every problem of the file.
    if v.problems:
        storage = None
    else:
        storage = storage or Storage(StorageConfig.from_dict(storage_cfg))
        problem = storage.writable_problem(output)
        if problem:
            v.add(("output",), problem if storage.unreachable else problem + "; choose another output or fix its permissions")
        if storage.unreachable:  # every S3 check would wait on the same dead endpoint: report it once, and
            # check the rest (jobs, params, local inputs), so one `validate` still shows every other problem
            v.s3_unchecked = True
            v.problems[-1] = Problem(v.problems[-1].line, v.problems[-1].key, v.problems[-1].message +
                                     " (s3:// inputs are not checked until the endpoint answers)")
    weights = model["weights"]
    if storage is not None and weights not in ("imagenet", "random") and not (v.s3_unchecked and is_s3(weights)):
        try:
            missing = "" if storage.exists(weights) else "does not exist"
        except StorageError as exc:
            missing = f"cannot be checked ({exc})"
        if missing:
            v.add(("model", "weights"), f"{weights} {missing}; stage the VGG19 state dict there, "
                                        "or use `imagenet` or `random`")
    wid = ModelSettings(**{**model, "weights": v.portable(weights)}).weights_id
    seen: dict[str, int] = {}
    # Jobs that use another job's generators expand after every other job.
    uses_trainer = [_uses_trainer(job) for job in jobs]
    v.job_kinds = {job["name"]: job.get("kind") for job in jobs if isinstance(job, dict) and isinstance(job.get("name"), str)}
    by_job: dict[int, list[TaskSpec]] = {}
    trainers: dict[str, tuple[str, list]] = {}
    for i in sorted(range(len(jobs)), key=lambda i: uses_trainer[i]):
        by_job[i] = _job_tasks(v, storage, jobs[i], ("jobs", i), output, wid, max_size, seen, trainers)
        if isinstance(jobs[i], dict) and isinstance(jobs[i].get("name"), str):
            trainers[jobs[i]["name"]] = (jobs[i].get("kind"), by_job[i])
    tasks = [t for i in range(len(jobs)) for t in by_job[i]]
    if v.problems:
        raise ManifestError(filename, v.problems)
    return Manifest(filename, name, output, dict(storage_cfg), dict(cluster), model, dict(limits), jobs, tasks, wid,
                    v.notes)
