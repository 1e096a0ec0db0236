"""Errors that name the spec's file, the key's dotted location and its line."""
from __future__ import annotations

import yaml

from htmc.registry import did_you_mean

from .model import SpecError
from .redact import SECRET_RE


def _line_of(node, path: tuple) -> int | None:
    """1-based line of the key (or item) at path in a composed YAML node tree, or of its deepest known parent."""
    line = None
    for part in path:
        if node is None:
            break
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    line, nxt = k.start_mark.line + 1, v
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _loc(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


class Checker:
    """Raises SpecError with the source, the dotted location and the line of the offending key."""

    def __init__(self, source: str, node):
        self.source, self.node = source, node

    def fail(self, path: tuple, msg: str):
        line = _line_of(self.node, path)
        where = f"{self.source}: {_loc(path)}" + (f" (line {line})" if line else "")
        raise SpecError(f"{where}: {msg}")

    def keys(self, mapping: dict, allowed, path: tuple, what: str):
        for k in mapping:
            if k not in allowed:
                extra = ""
                if isinstance(k, str) and SECRET_RE.search(k):
                    extra = ("; secrets do not belong in a spec: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                             "(or an instance role) in the environment")
                self.fail(path + (k,), f"unknown key '{k}' in {what}: {did_you_mean(str(k), list(allowed))}{extra}")

    def mapping(self, v, path: tuple) -> dict:
        if not isinstance(v, dict):
            shown = repr(v) if len(repr(v)) <= 200 else repr(v)[:197] + "..."
            self.fail(path, f"must be a mapping, got {type(v).__name__} {shown}")
        return v

    def value(self, checker, v, path):
        try:
            return checker(v)
        except ValueError as e:
            self.fail(path, str(e))
