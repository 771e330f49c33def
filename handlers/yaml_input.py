"""YAML from outside (``app.yaml``, ``rules import``), read as ``yaml.safe_load`` reads it, except
that a key written twice in one mapping is refused.

PyYAML keeps the last of two equal keys without a word: a rule with two ``any:`` lists matched only
the second, and a second ``server:`` section silently dropped the first. Both are typos an admin
must hear about, like an unknown key. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import yaml

#: The merge key (``<<: *defaults``): PyYAML merges it, and keys written beside it override on purpose.
_MERGE = "<<"


class DuplicateKey(ValueError):
    """Keys written twice in one mapping: one line per key, naming its key path and both lines."""

    def __init__(self, found: list[tuple[int, str, int]]) -> None:
        """``found``: (line, key path, line of the first one) of every repeated key."""
        self.problems = tuple(f"{path}: duplicate key at line {line} (first at line {first}); YAML would silently "
                              "keep only the last: remove or merge one" for line, path, first in sorted(found))
        super().__init__("\n".join(self.problems))


def load_yaml(text: str) -> Any:
    """The value of the YAML document ``text``, as ``yaml.safe_load`` builds it.

    Raises:
        DuplicateKey: a mapping names a key twice (every such key, in document order).
        yaml.YAMLError: not YAML; and whatever ``safe_load`` raises on values it cannot build.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicates(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_duplicates(root: yaml.Node) -> None:
    """Walk the composed document (iteratively, each node once: aliases may share or loop)."""
    found: list[tuple[int, str, int]] = []
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                where = f"{path}.{name}" if path else name
                if isinstance(key, yaml.ScalarNode) and key.value != _MERGE:
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in first:
                        found.append((line, where, first[(key.tag, key.value)]))
                    first.setdefault((key.tag, key.value), line)
                stack.append((value, where))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
    if found:
        raise DuplicateKey(found)


__all__ = ["DuplicateKey", "load_yaml"]
