"""Loading a spec's YAML: YAML 1.2 scalars, no duplicate keys, no Python tags, bounded size, and the node tree
(for the line numbers of error messages)."""
from __future__ import annotations

import re
from typing import Any

import yaml

from .model import SpecError

MAX_YAML_NODES = 1_000_000     # values in a spec, aliases expanded


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """yaml.SafeLoader with YAML 1.2 scalars where PyYAML's 1.1 rules surprise: 1e-3 is a float (1.1: a string),
    and only true/false are booleans (1.1: `off`, `no`, `on`, `yes` too, so `children: off` became False).
    Duplicate keys are refused (PyYAML silently keeps the last). Parsed by libyaml (CSafeLoader) where PyYAML
    has it: the pure-Python parser took 9.7 s of a 30,000-task spec's planning (issue 22 A)."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))

_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _construct(loader, node, source: str):
    """The document's values. An explicit tag whose text does not parse as that type (`!!int 0x1F n`,
    `!!float nan n`, `!!timestamp 2001-12-14 n`) makes PyYAML's constructors raise plain ValueError or
    AttributeError (found by tests/test_spec_fuzz.py): it is a spec error like any other bad YAML."""
    try:
        return loader.construct_document(node)
    except (ValueError, TypeError, AttributeError) as e:
        raise SpecError(f"{source}: not valid YAML: a tagged value (!!int, !!float, !!timestamp, ...) does not "
                        f"parse as its type ({type(e).__name__}: {e})") from None


def load_yaml(text: str, source: str) -> tuple[Any, Any]:
    """(data, node): the document and its node tree (for line numbers in messages)."""
    try:
        loader = _Loader(text)        # its reader already refuses control characters
    except yaml.YAMLError as e:
        raise SpecError(f"{source}: not valid YAML: {e}") from None
    try:
        node = loader.get_single_node()
        size = _expanded_size(node, {}) if node is not None else 0
        if size > MAX_YAML_NODES:   # a "billion laughs" of aliases, or simply far too big
            raise SpecError(f"{source}: the YAML has {size:.3g} values once its aliases (*name) are expanded; "
                            f"at most {MAX_YAML_NODES} are allowed")
        data = _construct(loader, node, source) if node is not None else None
    except yaml.YAMLError as e:
        raise SpecError(f"{source}: not valid YAML: {e}") from None
    except RecursionError:
        raise SpecError(f"{source}: the YAML is nested too deeply") from None
    except _RecursiveAlias as e:
        raise SpecError(f"{source}: line {e.args[0]}: an alias (*name) refers to a value that contains it; "
                        f"recursive values are not allowed") from None
    finally:
        loader.dispose()
    return data, node


def _expanded_size(node, memo: dict) -> int:
    """Number of nodes with aliases expanded (memoized on the shared alias nodes, so linear in the text)."""
    key = id(node)
    if key in memo and memo[key] is None:
        raise _RecursiveAlias(node.start_mark.line + 1)
    if key not in memo:
        memo[key] = None   # in progress: meeting it again below means an alias refers to its own parent
        if isinstance(node, yaml.SequenceNode):
            memo[key] = 1 + sum(_expanded_size(n, memo) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            memo[key] = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
        else:
            memo[key] = 1
    return memo[key]


class _RecursiveAlias(Exception):
    pass

