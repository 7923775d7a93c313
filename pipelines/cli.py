"""The ``texfarm`` command line: render (one image, no Ray), validate, run, submit, status, logs,
stop, catalog, failures, report. Exit codes: 0 success, 1 some tasks failed, 2 bad manifest or usage,
130 interrupted (Ctrl-C), 143 stopped (SIGTERM: `texfarm stop`); the catalog of what finished is written."""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .redact import redact
from .words import counted, noun_for
from .storage import Storage, StorageConfig, StorageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _size(text: str):
    """--size: N (long side) or WxH; anything else is refused here, naming the option."""
    import re

    if text.isdigit():
        return int(text)
    if re.fullmatch(r"\d+[xX]\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"expected N or WxH (e.g. 512 or 768x512), not {text!r}")


# The image format of `render -o NAME.EXT`, by extension (PNG otherwise).
OUTPUT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
# Positional names of input roles on the command line.
ROLE_ARGS = {"inputs": "exemplar"}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("texfarm")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _option_type(tp):
    """(argparse type, nargs) for a parameter's annotation (tasks/kind.py)."""
    import typing

    from tasks.kind import Size

    if tp is Size:
        return _size, None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        return _option_type([a for a in args if a is not type(None)][0])
    if origin is list:
        return (args[0] if args else str), "+"
    return tp, None


def _add_kind_parser(kinds, kind) -> None:
    """`texfarm render KIND`: positionals from the kind's input roles, an option per declared parameter
    (its help, default, choices and the paper's value from the declaration)."""
    from tasks.kind import MISSING, param_info

    parser = kinds.add_parser(kind.name, help=kind.help, description=kind.help)
    for i, role in enumerate((kind.fanout, *kind.shared)):
        several = i > 0 and role not in kind.raw  # shared images: every style image, every content image
        if not role:  # no fan-out role (mashup): its shared images are the positionals
            continue
        if role in kind.optional:  # an option, not a positional: --mask M, --source S [S ...], --style-map M
            one = role in kind.single
            parser.add_argument(f"--{role.replace('_', '-')}", nargs=None if one else "+",
                                dest=ROLE_ARGS.get(role, role), help=f"{role} image{'' if one else '(s)'} (optional)")
            continue
        parser.add_argument(ROLE_ARGS.get(role, role), nargs="+" if several else None,
                            help=f"{role} image{'s' if several else ''}" if role not in kind.raw
                            else f"{role} file (a .safetensors from texfarm; path or s3:// URI)")
    parser.add_argument("-o", "--output", required=True,
                        help="output image path or s3:// URI; .png, .jpg or .webp sets the format (several "
                             "images: OUT_1.png ...; a training also writes OUT.safetensors)")
    parser.add_argument("--quality", type=int, default=95, choices=range(1, 101), metavar="1..100",
                        help="JPEG / WebP quality (default: 95)")
    parser.add_argument("--png16", action="store_true", help="16 bits per channel PNG (for post-processing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--print-every", type=int, default=50, metavar="N",
                        help="a progress line every N optimizer iterations, on stderr (0: none; default: 50)")
    parser.add_argument("--save-every", type=int, default=0, metavar="N",
                        help="also write the image so far every N iterations, as OUT_iterNNNNN.png (default: 0, none)")
    if kind.exemplars:
        parser.add_argument("--max-exemplar-pixels", type=int, default=None, metavar="N",
                            help="scale exemplars above N pixels down (default: 1024x1024; limits.max_exemplar_pixels)")
    if kind.uses_vgg:
        parser.add_argument("--weights", default="imagenet", help="imagenet | random | PATH | s3://URI "
                                                                  "(default: imagenet)")
        parser.add_argument("--pooling", choices=("avg", "max"), default="avg", help="VGG19 pooling (default: avg)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    if kind.presets:
        parser.add_argument("--preset", choices=sorted(kind.presets),
                            help="start from a named set of parameter values (the defaults are for ImageNet "
                                 "weights): " + "; ".join(f"{name}: {values}" for name, values in kind.presets.items()))
    for info in param_info(kind.params).values():
        kind_type, nargs = _option_type(info.type)
        text = f"{info.help} (default: {info.default})"
        if info.paper is not MISSING:
            text += f"; paper: {info.paper}"
        choices = info.choices if info.choices and info.choices != ("<layer>",) else None
        flag = "--" + info.name.replace("_", "-")
        if kind_type is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, dest=info.name, type=kind_type, nargs=nargs, choices=choices, default=None,
                                help=text.replace("%", "%%"))


def _plain(text: str) -> str:
    """Help text without reStructuredText: ``x`` -> x, `x` -> 'x' (docstrings and kind help are RST)."""
    return re.sub(r"`([^`]+)`", r"'\1'", text.replace("``", ""))


class _PlainFormatter(argparse.HelpFormatter):
    def _format_text(self, text: str) -> str:
        return super()._format_text(_plain(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return _plain(super()._expand_help(action))


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's parser: plain help text (subparsers are made with their parent's class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _PlainFormatter)
        super().__init__(*args, **kwargs)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _parser() -> argparse.ArgumentParser:
    from tasks.registry import KINDS

    parser = _Parser(prog="texfarm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"texfarm {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = sub.add_parser("render", help="render one image directly, without Ray (debugging, quick looks)")
    kinds = render.add_subparsers(dest="kind", required=True)
    for kind in KINDS.values():
        _add_kind_parser(kinds, kind)

    validate = sub.add_parser("validate", help="parse and expand a manifest without running anything")
    validate.add_argument("manifest")
    only = dict(action="append", metavar="JOB", help="only this job (repeat for several; default: every job)")
    validate.add_argument("--only", **only)
    run = sub.add_parser("run", help="run a manifest on Ray (a local instance when no address)")
    run.add_argument("manifest")
    run.add_argument("--only", **only)
    run.add_argument("--retry-failed", action="store_true",
                     help="also run the tasks that failed before for a reason of their own (a bad input, "
                          "divergence); a plain run retries only failures from outside the task (storage, workers)")
    run.add_argument("--force", action="store_true",
                     help="run even if another run holds the output's lease (only when that run is gone)")
    run.add_argument("--address", help="a Ray (GCS) address, auto, ray://HEAD:10001; default: $RAY_ADDRESS, else a "
                                        "local Ray")
    dashboard = "the Ray dashboard, e.g. http://HEAD:8265 (default: $TEXFARM_DASHBOARD)"
    submit = sub.add_parser("submit", help="submit a manifest run as a Ray Job (s3:// output; prints the job id)")
    submit.add_argument("manifest")
    submit.add_argument("--address", help=dashboard)
    for name, text in (("status", "a submitted job's state; exit 0 succeeded, 1 failed or stopped, 3 still going"),
                       ("logs", "a submitted job's logs"), ("stop", "stop a submitted job")):
        command = sub.add_parser(name, help=text)
        command.add_argument("job_id")
        command.add_argument("--address", help=dashboard)
        if name == "logs":
            command.add_argument("-f", "--follow", action="store_true",
                                 help="follow until the job ends; exit code as for status")
    report = sub.add_parser("report", help="write {output}/_report/: index.html, paginated job pages, contact sheets")
    report.add_argument("output", help="the manifest's output prefix or folder")
    report.add_argument("--endpoint-url")
    report.add_argument("--max-input-pixels", type=_positive_int, metavar="N",
                        help="the run's limits.max_input_pixels, when it raised or lowered it: inputs over N get "
                             "no thumbnail, as their tasks refused them (default: the run's default limit)")
    sub.add_parser("bench", help="benchmarks on this device; options: `texfarm bench --help`", add_help=False)
    cat = sub.add_parser("catalog", help="summarize a run's catalog")
    cat.add_argument("output", help="the manifest's output prefix or folder")
    cat.add_argument("--endpoint-url")
    cat.add_argument("--rebuild", action="store_true",
                     help="rebuild the catalog from the per-task records (done automatically when it is missing "
                          "or damaged) and write it")
    export = sub.add_parser("export", help="write a run's renders as dataset shards (Parquet or WebDataset tar)")
    export.add_argument("output", help="the manifest's output prefix or folder")
    export.add_argument("dest", help="a folder or s3:// prefix for the shards (keep it outside OUTPUT)")
    export.add_argument("--format", choices=("parquet", "webdataset"), default="parquet",
                        help="parquet: catalog columns + image bytes; webdataset: {task_id}.png + {task_id}.json "
                             "per task in tar shards (default: parquet)")
    export.add_argument("--shard-size", type=int, default=1000, help="tasks per shard (default: 1000)")
    export.add_argument("--overwrite", action="store_true",
                        help="delete an earlier export in DEST first (DEST must otherwise be empty)")
    export.add_argument("--endpoint-url")
    failures = sub.add_parser("failures", help="list a run's failed tasks: job, task id, inputs, seed, error")
    failures.add_argument("output", help="the manifest's output prefix or folder")
    failures.add_argument("--endpoint-url")
    failures.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _render(args: argparse.Namespace) -> int:
    from tasks.device import pick_device
    from tasks.imageio import decode_image, encode_image
    from tasks.imageops import DEFAULT_MAX_EXEMPLAR_PIXELS, bounded
    from tasks.progress import listening
    from tasks.kind import build_params, param_info
    from tasks.registry import get_kind
    from tasks.vgg import VGGFeatures, WeightsUnavailable

    from .weights import local_weights

    storage = Storage(StorageConfig())
    kind = get_kind(args.kind)
    given = vars(args)
    suffix = Path(args.output.split("://", 1)[-1]).suffix.lower()
    if suffix and suffix not in OUTPUT_FORMATS:
        raise ValueError(f"-o {args.output}: {suffix} is not a format texfarm writes; use "
                         f"{', '.join(sorted(OUTPUT_FORMATS))} (or no extension for PNG)")
    where = args.output if args.output.startswith("s3://") else str(Path(args.output).resolve().parent)
    problem = storage.writable_problem(where)  # checked before the render, not after it
    if problem:
        raise ValueError(f"-o {args.output}: {problem}")
    if given.get("weights") == "random" and "random-weights" in kind.presets and not given.get("preset"):
        print(f"hint: {kind.name}'s defaults are for ImageNet weights; with random weights add --preset random-weights "
              f"({kind.presets['random-weights']}), or the render may stay noise", file=sys.stderr)
    params = build_params(kind.params, {**kind.preset(given.get("preset")),
                                        **{k: given[k] for k in param_info(kind.params) if given.get(k) is not None}})
    roles = {}
    for role in (r for r in (kind.fanout, *kind.shared) if r):
        value = given[ROLE_ARGS.get(role, role)]
        if value is None and role in kind.optional:
            continue
        roles[role] = value if isinstance(value, list) else [value]
    inputs = {role: [storage.read(uri) if role in kind.raw else
                     decode_image(storage.read(uri), name=uri, alpha=role in kind.alpha)
                     for uri in uris] for role, uris in roles.items()}
    limit = given.get("max_exemplar_pixels") or DEFAULT_MAX_EXEMPLAR_PIXELS
    for role in kind.exemplars:
        for i, (uri, image) in enumerate(zip(roles.get(role, []), inputs.get(role, []))):
            inputs[role][i], factor = bounded(image, limit)
            if factor < 1.0:
                print(f"warning: exemplar {uri} is {image.shape[-1]}x{image.shape[-2]}, over {limit:,} pixels: used "
                      f"at scale {factor:.3f} (its elements come out smaller; crop it, or raise "
                      "--max-exemplar-pixels)", file=sys.stderr)
    device = pick_device(args.device)
    clock = time.perf_counter()
    on_step = _progress(args, storage, encode_image, clock)
    if kind.uses_vgg:
        try:
            vgg = VGGFeatures(local_weights(args.weights, storage), args.pooling, 0, "relu5_4", device)
        except WeightsUnavailable as exc:  # its hint names the manifest key; here the flag is what to change
            raise WeightsUnavailable(str(exc).replace("`weights: random`", "`--weights random`")
                                     .replace("`weights: /path", "`--weights /path")
                                     .replace("`weights: s3://", "`--weights s3://")) from None
        with listening(on_step):
            result = kind.function()(inputs, params, vgg, args.seed)
    else:
        result = kind.function()(inputs, params, None, args.seed, device=device)
    stem, dot, suffix = args.output.rpartition(".")
    names = [args.output] + [f"{stem}_{i}.{suffix}" for i in range(1, len(result.images))]
    fmt = "png16" if args.png16 else OUTPUT_FORMATS.get("." + suffix.lower() if dot else "", "png")
    for name, image in zip(names, result.images):
        storage.write(name, encode_image(image, fmt, args.quality))
    for extension, data in result.files.items():  # a training's generator: OUT.safetensors
        names.append((stem if dot else args.output) + extension)
        storage.write(names[-1], data)
    record = result.record
    losses = (f"loss {record['loss_start']:.4g} -> {record['loss_end']:.4g} in {record['iterations']} iterations, "
              if record.get("loss_end") is not None else "")
    print(f"wrote {', '.join(names)}: {losses}{record['seconds']:.2f} s on {device} "
          f"({time.perf_counter() - clock:.1f} s with model load)")
    return EXIT_OK


def _progress(args: argparse.Namespace, storage: Storage, encode_image, clock: float):
    """The `render` listener (tasks/progress.py): neural-style's -print_iter and -save_iter."""
    marks = {"print": 0, "save": 0}
    stem, dot, suffix = args.output.rpartition(".")
    stem, suffix = (stem, suffix) if dot and "/" not in suffix else (args.output, "png")

    def on_step(step) -> None:
        if args.print_every > 0 and step.done // args.print_every > marks["print"]:
            marks["print"] = step.done // args.print_every
            print(f"octave {step.octave}/{step.octaves} ({step.size[1]}x{step.size[0]}): iteration {step.done}/"
                  f"{step.total}, loss {step.loss:.4g}, {time.perf_counter() - clock:.1f} s", file=sys.stderr, flush=True)
        if args.save_every > 0 and step.done // args.save_every > marks["save"]:
            marks["save"] = step.done // args.save_every
            name = f"{stem}_iter{step.done:05d}.{suffix}"
            fmt = OUTPUT_FORMATS.get("." + suffix.lower(), "png")
            storage.write(name, encode_image(step.image[:1].clamp(0, 1).cpu(), fmt, args.quality))

    return on_step


def _load(path: str):
    from .manifest import ManifestError, parse_manifest

    try:
        return parse_manifest(path)
    except ManifestError as exc:
        print(redact(f"error: {counted(len(exc.problems), 'problem')} in the manifest:\n{exc}"), file=sys.stderr)
        return None


def _unknown_jobs(manifest, only: Optional[list[str]]) -> bool:
    """Say which --only names are not jobs of the manifest (exit 2 follows)."""
    import difflib

    jobs = manifest.job_counts()
    unknown = [name for name in only or [] if name not in jobs]
    for name in unknown:
        close = difflib.get_close_matches(name, list(jobs), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"its jobs: {', '.join(jobs)}"
        print(f"error: --only {name}: {manifest.path} has no job {name!r}; {hint}", file=sys.stderr)
    return bool(unknown)


def _validate(args: argparse.Namespace) -> int:
    manifest = _load(args.manifest)
    if manifest is None or _unknown_jobs(manifest, args.only):
        return EXIT_USAGE
    print(f"{manifest.path}: {manifest.name} -> {manifest.output} ({manifest.model['weights']} weights)")
    for note in manifest.notes:
        print(f"note: {note}", file=sys.stderr)
    kinds = {task.job: task.kind for task in manifest.tasks}  # one pass, not one scan per job
    counts = {job: n for job, n in manifest.job_counts().items() if not args.only or job in args.only}
    for job, count in counts.items():
        print(f"  {job:24} {kinds[job]:10} {count:6} {noun_for(count, 'task')}")
    total = sum(counts.values())
    print(f"  {'total':35} {total:6} {noun_for(total, 'task')}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from . import catalog
    from .run import run_manifest

    manifest = _load(args.manifest)
    if manifest is None or _unknown_jobs(manifest, args.only):
        return EXIT_USAGE
    from .lease import LeaseHeld
    from .run import WorkerStartError

    for note in manifest.notes:
        print(f"note: {note}", file=sys.stderr)
    try:
        summary = run_manifest(manifest, address=args.address or manifest.cluster.get("address"),
                               retry_failed=args.retry_failed, only=args.only, force=args.force)
    except (WorkerStartError, LeaseHeld) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    storage = Storage(StorageConfig.from_dict(manifest.storage))
    print(catalog.format_summary(catalog.read_rows(storage, manifest.output)))
    print(f"outputs: {manifest.output}/<job>/<task_id>.png\ncatalog: {summary.catalog_uri}")
    try:
        from .report import build_report

        report = build_report(storage, manifest.output, manifest.name, manifest.limits.get("max_input_pixels"))
        print(f"report:  {report.index_uri}")
    except Exception as exc:  # the renders are safe in storage; a report problem must not fail the run
        print(f"warning: could not write the report: {exc}", file=sys.stderr)
    if summary.failed:
        print(f"{counted(len(summary.failed), 'task')} failed:", file=sys.stderr)
        for record in summary.failed:
            print(f"  {record['job']}/{record['task_id']}: {record['error']}", file=sys.stderr)
    if summary.failed_before:
        before = len(summary.failed_before)
        print(f"{counted(before, 'task')} failed in an earlier run for a reason of {noun_for(before, 'its', 'their')} "
              f"own (a bad input, divergence, ...) and {noun_for(before, 'was', 'were')} not run again: "
              f"`texfarm failures {manifest.output}` lists them; `texfarm run --retry-failed {args.manifest}` "
              "runs them again", file=sys.stderr)
    return summary.exit_code


def _submit(args: argparse.Namespace) -> int:
    from . import jobs

    manifest = _load(args.manifest)
    if manifest is None:
        return EXIT_USAGE
    working_dir = Path.cwd()
    relative = os.path.relpath(Path(args.manifest).resolve(), working_dir)
    if relative.startswith(".."):
        print("error: run `texfarm submit` from a folder that contains the manifest (it is uploaded as working_dir)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        jobs.check_submittable(manifest, Path(args.manifest), working_dir)
        jobs.check_upload_size(working_dir)
        client = jobs.job_client(args.address)
    except jobs.SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(jobs.submit(client, relative, working_dir))
    return EXIT_OK


def _job_command(args: argparse.Namespace) -> int:
    from . import jobs

    try:
        client = jobs.job_client(args.address)
    except jobs.SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        info = client.get_job_info(args.job_id)
    except Exception as exc:  # Ray answers an unknown id with a 404 inside a RuntimeError
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        print(f"error: no job {args.job_id!r} on {jobs.dashboard_address(args.address)} ({text}); "
              "`ray job list` shows the ids", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "status":
        status = info.status
        # Like `ray job status`: the state, and Ray's message for a job that failed or stopped.
        print(status if str(status) in ("PENDING", "RUNNING", "SUCCEEDED") or not info.message
              else f"{status}: {info.message}")
        return jobs.state_exit_code(status)
    if args.command == "logs":
        if not args.follow:
            print(client.get_job_logs(args.job_id), end="")
            return EXIT_OK
        jobs.follow_logs(client, args.job_id)
        return jobs.state_exit_code(client.get_job_status(args.job_id))
    print("stopped" if client.stop_job(args.job_id) else "already finished")
    return EXIT_OK


def _catalog(args: argparse.Namespace) -> int:
    from . import catalog

    storage = Storage(StorageConfig(endpoint_url=args.endpoint_url))
    output = args.output.rstrip("/")
    if args.rebuild:
        rows = catalog.rebuild_rows(storage, output)
        catalog.write(storage, output, rows)
        print(f"rebuilt {catalog.catalog_uri(output)} from {len(rows)} task records", file=sys.stderr)
    else:
        rows = catalog.read_rows(storage, output)
    if not rows:
        print(f"error: no catalog and no task records under {output}: run the manifest first", file=sys.stderr)
        return EXIT_USAGE
    print(catalog.format_summary(rows))
    return EXIT_OK


def _failures(args: argparse.Namespace) -> int:
    import json

    from . import catalog

    output = args.output.rstrip("/")
    rows = catalog.read_rows(Storage(StorageConfig(endpoint_url=args.endpoint_url)), output)
    if not rows:
        print(f"error: no catalog and no task records under {output}: run the manifest first", file=sys.stderr)
        return EXIT_USAGE
    failed = [r for r in rows if r["status"] != "done"]
    for r in failed:
        item = {"job": r["job"], "task_id": r["task_id"], "inputs": json.loads(r["inputs"] or "{}"),
                "seed": r["seed"], "error": r["error"]}
        if args.json:
            print(json.dumps(item, sort_keys=True))
        else:
            inputs = " ".join(uri for uris in item["inputs"].values() for uri in uris)
            print(f"{r['job']}/{r['task_id']} seed {r['seed']} {inputs}\n    {r['error']}")
    if not args.json:
        print(f"{len(failed)} of {len(rows)} tasks failed" + (": `texfarm run --retry-failed MANIFEST` runs them "
                                                             "again" if failed else ""))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from .export import export

    shards = export(Storage(StorageConfig(endpoint_url=args.endpoint_url)), args.output.rstrip("/"),
                    args.dest.rstrip("/"), args.format, args.shard_size, args.overwrite)
    print(f"{counted(len(shards), args.format + ' shard')} under {args.dest.rstrip('/')}/")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from .report import build_report

    result = build_report(Storage(StorageConfig(endpoint_url=args.endpoint_url)), args.output.rstrip("/"),
                          max_input_pixels=args.max_input_pixels)
    print(f"{result.index_uri} ({result.tasks} tasks, {result.new_thumbnails} new thumbnails)")
    return EXIT_OK


COMMANDS = {"render": _render, "validate": _validate, "run": _run, "submit": _submit, "status": _job_command,
            "logs": _job_command, "stop": _job_command, "catalog": _catalog,
            "report": _report, "failures": _failures, "export": _export}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \udce9, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if argv[:1] == ["bench"]:  # the benchmark has its own options
        from bench.__main__ import main as bench_main

        return bench_main(argv[1:])
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        return _unknown_options(parser, args, unknown)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not isinstance(exc, _expected_errors()):
            raise
        print(redact(f"error: {exc}"), file=sys.stderr)
        return EXIT_USAGE


def _unknown_options(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]) -> int:
    """Name the first unknown option and suggest the nearest known one, as the manifest does for keys."""
    import difflib

    command = parser
    for name in (args.command, getattr(args, "kind", None)):  # the (sub)parser the options belong to
        sub = next((a for a in command._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or name not in sub.choices:
            break
        command = sub.choices[name]
    known = [flag for action in command._actions for flag in action.option_strings if flag.startswith("--")]
    option = next((item for item in unknown if item.startswith("-")), unknown[0])
    close = difflib.get_close_matches(option.split("=", 1)[0], known, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; `{command.prog} --help` lists the options"
    print(f"error: {command.prog}: unknown option {option!r}{hint}", file=sys.stderr)
    return EXIT_USAGE


# Commands that only read and write storage: once their output is flushed, nothing is left to tear down.
READERS = {"catalog", "failures", "export", "report", "validate"}


def entry() -> None:
    """The `texfarm` command. A reading command ends with os._exit once its output is flushed:
    interpreter teardown with native thread pools still alive (Arrow's, boto3's transfer threads)
    aborted 5 runs in 49 of `catalog s3://...` after the right output ("terminate called without
    an active exception", exit 134). `run` keeps the normal exit: Ray's shutdown hooks must run."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv[:1] and argv[0] in READERS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _expected_errors() -> tuple:
    """Errors that are the user's to fix (one line, exit 2). The torch-side ones only exist if a command
    imported torch: `status`, `logs`, `catalog` and `report` never do, and start in a fraction of a second."""
    errors = [StorageError, ValueError, OSError]
    if "tasks.vgg" in sys.modules:
        errors.append(sys.modules["tasks.vgg"].WeightsUnavailable)
    if "tasks.optimize" in sys.modules:
        errors.append(sys.modules["tasks.optimize"].Diverged)
    return tuple(errors)


if __name__ == "__main__":  # `python -m pipelines.cli`: the same as the `texfarm` command
    entry()
