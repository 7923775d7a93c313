"""What a task kind is, declared once and read by everything else (torch-free, so that manifest
validation, `texfarm render --help` and the docs never load torch).

A kind module declares its parameter dataclass, whose fields carry their own metadata through
``param()`` (help, choices, range, the paper's value), and one ``Kind``: input roles, what it batches,
checkpoints or depends on, and the dotted path of its task function, imported only when it runs.
"""
from __future__ import annotations

import dataclasses
import importlib
import re
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping, Optional, Union

Size = Union[int, str, list]
MISSING = dataclasses.MISSING


def param(default: Any = MISSING, *, help: str, choices: Optional[tuple] = None, min: Optional[float] = None,
          max: Optional[float] = None, above: Optional[float] = None, paper: Any = MISSING) -> Any:
    """A parameter field: its default and the metadata validation, the CLI and the docs read.
    ``min``/``max`` bound inclusively, ``above`` exclusively (for values that must be > 0)."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "above": above}
    if paper is not MISSING:
        meta["paper"] = paper
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Kind:
    """A task kind's declaration. ``run``/``batch_run`` are "module:function" paths (imported lazily)."""
    name: str
    help: str
    params: type
    run: str  # (inputs: dict[role, list[Tensor]], params, vgg, seed) -> TaskOutput
    fanout: str  # the input role with one task per image ("inputs", "content", "style", "generator")
    shared: tuple[str, ...] = ()  # roles every task of the job receives whole (e.g. "style")
    optional: tuple[str, ...] = ()  # shared roles a job may leave out (repair's mask and source)
    fans: tuple[str, ...] = ()  # shared roles that also fan out, one task per image (a folder of doodles)
    single: tuple[str, ...] = ()  # shared roles that take exactly one image (a mask, a semantic map)
    # Roles whose images are statistics sources used at native scale (exemplars, styles, sources): scaled
    # down above limits.max_exemplar_pixels. Never the pixels a task keeps (repair's image).
    exemplars: tuple[str, ...] = ()
    alpha: tuple[str, ...] = ()  # roles decoded with their alpha channel, (1, 4, H, W) (repair's image)
    raw: tuple[str, ...] = ()  # roles passed as bytes, not decoded images (a generator file)
    checkpoints: bool = False  # long training: run() takes a CheckpointStore as `checkpoints`
    uses_vgg: bool = True  # False: run() works from its inputs alone and takes `device`
    batch_run: Optional[str] = None  # (inputs, params, vgg, seeds) -> [TaskOutput]: seeds in one pass
    generator_from: Optional[str] = None  # the kind whose outputs its `raw` role may name as {job: NAME}
    produces: tuple[str, ...] = (".png",)  # files each task writes beside its record
    reports_loss: bool = True  # whether its record carries loss_start / loss_end (the report shows them)
    reports_quality: bool = False  # whether its record carries `quality` (tasks/quality.py) against its exemplar
    # Named sets of parameter values, chosen by a job's `preset:` or `render --preset`; the defaults are
    # stated for ImageNet weights, and a value that only random weights need lives in "random-weights".
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def function(self, which: str = "run") -> Callable:
        return _import(getattr(self, which))

    def preset(self, name: Optional[str]) -> dict[str, Any]:
        """The values of preset ``name`` (none for None); a clear error naming the known ones."""
        if name is None:
            return {}
        if name not in self.presets:
            known = ", ".join(sorted(self.presets)) or "none"
            raise ValueError(f"kind '{self.name}' has no preset {name!r}; its presets: {known}")
        return dict(self.presets[name])


@lru_cache(maxsize=None)
def _import(path: str) -> Callable:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


# ---- parameter metadata -------------------------------------------------------------------------

@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: Any  # the resolved annotation
    default: Any
    help: str
    choices: Optional[tuple]
    min: Optional[float]
    max: Optional[float]
    above: Optional[float]
    paper: Any = MISSING

    @property
    def type_text(self) -> str:
        return _type_text(self.type)


@lru_cache(maxsize=None)
def param_info(cls: type) -> dict[str, ParamInfo]:
    hints = typing.get_type_hints(cls)  # each base class's annotations in its own module
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        meta = dict(f.metadata)
        out[f.name] = ParamInfo(f.name, hints[f.name], default, meta.get("help", ""), meta.get("choices"),
                                meta.get("min"), meta.get("max"), meta.get("above"), meta.get("paper", MISSING))
    return out


def _type_text(tp: Any) -> str:
    if tp is Size:
        return "size (N, 'WxH' or [W, H])"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return _type_text(rest[0]) + " or null"
    if origin is list:
        return f"a list of {_type_text(args[0]) if args else 'values'}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def coerce(info: ParamInfo, value: Any) -> Any:
    """``value`` in the parameter's type, or ValueError saying what it must be. YAML 1.1 reads `1e-3`
    (no dot) as text: a float parameter accepts that form, as users write it (neural-style's 1e-3)."""
    return _coerce(info.type, value, info)


def _coerce(tp: Any, value: Any, info: ParamInfo) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Size:
        if isinstance(value, bool) or not isinstance(value, (int, str, list)):
            raise ValueError(f"must be {_type_text(tp)}, not {value!r}")
        return value
    if origin is Union and type(None) in args:
        if value is None:
            return None
        return _coerce([a for a in args if a is not type(None)][0], value, info)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"must be {_type_text(tp)}, not {value!r}")
        return [_coerce(args[0], item, info) if args else item for item in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {value!r}")
        return _check_range(value, info)
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"must be a number, not {value!r}")
        if value in (float("inf"), float("-inf")):  # no parameter means anything at infinity; JSON cannot hold it
            raise ValueError(f"must be a finite number, not {value!r}")
        return _check_range(value, info)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {value!r}")
        return value
    return value


def _check_range(value: float, info: ParamInfo) -> float:
    if info.min is not None and value < info.min:
        raise ValueError(f"must be at least {info.min:g} (got {value})")
    if info.max is not None and value > info.max:
        raise ValueError(f"must be at most {info.max:g} (got {value})")
    if info.above is not None and value <= info.above:
        raise ValueError(f"must be greater than {info.above:g} (got {value})")
    return value


def check_param(cls: type, key: str, value: Any, allowed: Optional[typing.Iterable[str]] = None) -> Any:
    """The checked value of parameter ``key`` of ``cls``: type, range, then choices (of each item for a
    list); ``allowed`` adds the choices that depend on the network (layer names)."""
    info = param_info(cls)[key]
    value = coerce(info, value)
    choices = info.choices
    if choices == ("<layer>",):
        choices = tuple(allowed or ())
    if choices:
        items = value if isinstance(value, list) else [value]
        bad = [item for item in items if item is not None and item not in choices]
        if bad:
            shown = ", ".join(map(str, choices)) if len(choices) <= 12 else \
                ", ".join(map(str, choices[:12])) + ", ..."
            raise ValueError(f"{bad[0]!r} is not one of {shown}")
    return value


def build_params(cls: type, values: dict[str, Any]) -> Any:
    """Instantiate ``cls`` from a dict, rejecting unknown keys and checking every value."""
    info = param_info(cls)
    unknown = sorted(set(values) - set(info))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {cls.__name__}; known: {sorted(info)}")
    return cls(**{key: coerce(info[key], value) for key, value in values.items()})
