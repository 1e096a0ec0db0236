"""One small registry type for every named, versioned thing: target functions, search methods, norms, task kinds.

Modelled on lm-evaluation-harness's single task registry: entries are looked up by name, a wrong name fails with
a "did you mean" suggestion, and every entry carries a version that is stored with every result (DESIGN §2).
"""
from __future__ import annotations

import difflib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A lookup by a name that is not registered. The message names the valid choices."""

    def __str__(self) -> str:  # KeyError would quote the message; show it plainly.
        return self.args[0] if self.args else ""


def did_you_mean(name: str, choices: list[str]) -> str:
    """Text that suggests the closest valid names, for error messages everywhere in the project."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}valid choices: {', '.join(sorted(choices))}"


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    version: str
    obj: T
    doc: str = ""


class Registry(Generic[T]):
    """Named, versioned entries of one kind (e.g. "target function")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, version: str, obj: T | None = None, *, replace: bool = False):
        """Register obj under name; usable as a decorator when obj is omitted."""
        if not version:
            raise ValueError(f"{self.kind} '{name}' needs a non-empty version")

        def add(o: T) -> T:
            if name in self._entries and not replace:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = Entry(name, str(version), o, (getattr(o, "__doc__", "") or "").strip())
            return o

        return add if obj is None else add(obj)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} '{name}': {did_you_mean(name, list(self._entries))}") from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def version(self, name: str) -> str:
        return self.entry(name).version

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())


PLUGIN_MODULE_PREFIX = "htmc_plugin_"       # the module name of a loaded plugin file: this prefix + its stem


def load_plugin(path: str | Path) -> Any:
    """Import a user's Python file so that it can register entries through the public registries.

    Plugins load only from a path the user names (never from results, specs or MLflow).
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"plugin '{path}' is a directory; give the path of a Python file (e.g. myfuncs.py)")
    if not p.is_file():
        raise FileNotFoundError(f"plugin file '{path}' does not exist")
    mod_name = f"{PLUGIN_MODULE_PREFIX}{p.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    if spec is None or spec.loader is None:
        raise ValueError(f"plugin '{path}' is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Shared range check with a message that names the bad value."""
    bad = value < 0 if allow_zero else value <= 0
    if bad:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


Factory = Callable[..., Any]
