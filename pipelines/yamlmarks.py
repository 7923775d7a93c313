"""Safe YAML loading that keeps the line number of every key and value, for error messages."""
from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple  # ('jobs', 0, 'params', 'size')


class YamlError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def load_with_lines(text: str) -> tuple[Any, dict[Path_, int]]:
    """Parse ``text`` with the safe loader; return the data and {path: 1-based line}."""
    loader = yaml.SafeLoader(text)
    lines: dict[Path_, int] = {}
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise YamlError(mark.line + 1 if mark else 1, f"YAML syntax error: {exc.problem or exc}") from None

        def convert(node: yaml.Node, path: Path_) -> Any:
            lines[path] = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                out: dict = {}
                for key_node, value_node in node.value:
                    key = loader.construct_object(key_node, deep=True)
                    if key in out:
                        raise YamlError(key_node.start_mark.line + 1, f"duplicate key {key!r}")
                    lines[path + (key,)] = key_node.start_mark.line + 1
                    out[key] = convert(value_node, path + (key,))
                return out
            if isinstance(node, yaml.SequenceNode):
                return [convert(item, path + (i,)) for i, item in enumerate(node.value)]
            return loader.construct_object(node, deep=True)

        return (convert(node, ()) if node is not None else None), lines
    finally:
        loader.dispose()
