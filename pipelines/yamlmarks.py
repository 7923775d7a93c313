"""Safe YAML loading that keeps the line number of every key and value, for error messages."""
from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple  # ('jobs', 0, 'params', 'size')
MAX_DEPTH = 100  # nesting levels; a manifest needs about 6, and a deep one would exhaust the parser's stack
MAX_NODES = 1_000_000  # values after alias expansion: a 540-byte alias bomb would otherwise eat the memory
# Plain YAML only: no tag may pick a Python constructor or change what a collection is.
PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")}


class YamlError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def load_with_lines(text: str) -> tuple[Any, dict[Path_, int]]:
    """Parse ``text`` with the safe loader; return the data and {path: 1-based line}."""
    bad = next((i for i, ch in enumerate(text) if (ord(ch) < 32 and ch not in "\t\n\r") or ord(ch) == 0x7f), None)
    if bad is not None:  # YAML's reader refuses them with a position, not a line
        raise YamlError(text.count("\n", 0, bad) + 1, f"the manifest holds a control character (#x{ord(text[bad]):04x}) "
                                                      "that YAML does not allow; remove it")
    depth = _nesting(text)
    if depth[0] > MAX_DEPTH:
        raise YamlError(depth[1], f"the manifest nests more than {MAX_DEPTH} levels deep; a manifest needs a few")
    loader = yaml.SafeLoader(text)
    lines: dict[Path_, int] = {}
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise YamlError(mark.line + 1 if mark else 1, f"YAML syntax error: {exc.problem or exc}") from None
        except RecursionError:  # block nesting the bracket count above does not see
            raise YamlError(1, "the manifest nests too deep for the YAML parser; a manifest needs a few levels") from None

        visited = [0]

        def convert(node: yaml.Node, path: Path_) -> Any:
            line = node.start_mark.line + 1
            lines[path] = line
            visited[0] += 1
            if visited[0] > MAX_NODES:
                raise YamlError(line, f"the manifest expands to more than {MAX_NODES:,} values (YAML aliases "
                                      "repeating a block?); write the jobs out, or split the run")
            if node.tag not in PLAIN_TAGS:
                raise YamlError(line, f"YAML tag {node.tag!r} is not allowed: a manifest is plain YAML "
                                      "(strings, numbers, booleans, lists and mappings)")
            if isinstance(node, yaml.MappingNode):
                out: dict = {}
                for key_node, value_node in node.value:
                    if not isinstance(key_node, yaml.ScalarNode):
                        raise YamlError(key_node.start_mark.line + 1, "a key must be a plain name, not a list or "
                                                                      "mapping (a '?' complex key)")
                    key = convert(key_node, path + ("<key>",))
                    if key in out:
                        raise YamlError(key_node.start_mark.line + 1, f"duplicate key {key!r}")
                    lines[path + (key,)] = key_node.start_mark.line + 1
                    out[key] = convert(value_node, path + (key,))
                return out
            if isinstance(node, yaml.SequenceNode):
                return [convert(item, path + (i,)) for i, item in enumerate(node.value)]
            try:
                return loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:  # e.g. a malformed timestamp
                raise YamlError(line, f"YAML value error: {getattr(exc, 'problem', None) or exc}") from None

        try:
            return (convert(node, ()) if node is not None else None), lines
        except RecursionError:
            raise YamlError(1, "the manifest nests too deep; a manifest needs a few levels") from None
    finally:
        loader.dispose()


def _nesting(text: str) -> tuple[int, int]:
    """(deepest flow nesting of [ and {, its line), outside quoted strings and comments: enough to refuse
    a nesting bomb before the recursive parser meets it."""
    depth = deepest = 0
    line = deepest_line = 1
    quote = None
    comment = False
    for ch in text:
        if ch == "\n":
            line += 1
            comment = False
            continue
        if comment:
            continue
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest, deepest_line = depth, line
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest, deepest_line
