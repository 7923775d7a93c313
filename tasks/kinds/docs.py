"""The README's parameter tables, generated from the kind declarations:

    python -m tasks.kinds.docs README.md      # rewrites every <!-- params:KIND --> block in place

tests/test_kinds.py checks that the README matches the declarations."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from ..kind import MISSING, ParamInfo, param_info
from ..registry import KINDS


def yaml_text(value) -> str:
    """A default as a manifest writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    return str(value)


def _allowed(info: ParamInfo) -> str:
    parts = [info.type_text.replace("|", "\\|")]
    if info.choices == ("<layer>",):
        parts.append("VGG19 layer names (`relu4_2`, `pool3`, ...)")
    elif info.choices:
        parts.append(" \\| ".join(f"`{c}`" for c in info.choices))
    bounds = [f">= {info.min:g}" if info.min is not None else "", f"> {info.above:g}" if info.above is not None else "",
              f"<= {info.max:g}" if info.max is not None else ""]
    parts += [b for b in bounds if b]
    return "; ".join(parts)


def table(kind_name: str) -> str:
    kind = KINDS[kind_name]
    lines = [f"<!-- params:{kind.name} -->", "", "| parameter | default | allowed | meaning | paper |",
             "| --- | --- | --- | --- | --- |"]
    for info in param_info(kind.params).values():
        paper = "" if info.paper is MISSING else str(info.paper)
        lines.append(f"| `{info.name}` | `{yaml_text(info.default)}` | {_allowed(info)} | {info.help} | {paper} |")
    for name, values in kind.presets.items():
        shown = ", ".join(f"`{key}: {yaml_text(value)}`" for key, value in values.items())
        lines += ["", f"Preset `{name}` (`preset: {name}` in a job, `--preset {name}` for render): {shown}."]
    return "\n".join(lines + ["", "<!-- /params -->"])


def rewrite(text: str) -> str:
    return re.sub(r"<!-- params:(\w+) -->.*?<!-- /params -->", lambda m: table(m.group(1)), text, flags=re.S)


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "README.md")
    path.write_text(rewrite(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
