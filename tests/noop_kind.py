"""`noop`: a trivial task kind for the sweep service's tests and benchmarks. Not science, and no production module
imports it: it is a plugin file (htmc.registry.load_plugin), which tests/conftest.py loads for every test and which
the tests name with `--plugin tests/noop_kind.py` where they run an entry point in another process (a subprocess
driver, a Ray job), as a user names a plugin of their own. benchmarks/scale.py and benchmarks/dispatch.py load it
too. Parameters:
  x        any number; the record's value is 2·x
  sleep_s  seconds to sleep before returning (simulates work)
  fail     raise RuntimeError instead of returning (tests the `failed` rows)
  touch    a file path created when the task starts (lets a test act while the task is running)
  fail_if_missing  a file path; raise if it does not exist when the task runs (a failure that a later
           `--retry-failed` run can turn into ok)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from htmc.records import metric, Record
from htmc.tasks import TASK_KINDS, TaskKind

NOOP_VERSION = "1"
NOOP_DEFAULTS = {"x": 0.0, "sleep_s": 0.0, "fail": False, "touch": None, "fail_if_missing": None}


@dataclass(kw_only=True)
class NoopRecord(Record, kind="noop"):
    """The noop kind's columns."""
    x: float
    value: float | None = metric()
    slept_s: float | None = metric()


def _validate(params: dict) -> dict:
    from htmc.registry import did_you_mean
    unknown = [k for k in params if k not in NOOP_DEFAULTS]
    if unknown:
        raise ValueError(f"unknown parameter '{unknown[0]}' for task kind 'noop': "
                         f"{did_you_mean(unknown[0], list(NOOP_DEFAULTS))}")
    p = {**NOOP_DEFAULTS, **params}
    for name in ("x", "sleep_s"):
        if not isinstance(p[name], (int, float)) or isinstance(p[name], bool):
            raise ValueError(f"{name} must be a number, got {p[name]!r}")
    if p["sleep_s"] < 0:
        raise ValueError(f"sleep_s must be >= 0, got {p['sleep_s']!r}")
    if not isinstance(p["fail"], bool):
        raise ValueError(f"fail must be true or false, got {p['fail']!r}")
    for name in ("touch", "fail_if_missing"):
        if p[name] is not None and not isinstance(p[name], str):
            raise ValueError(f"{name} must be a path, got {p[name]!r}")
    p["x"], p["sleep_s"] = float(p["x"]), float(p["sleep_s"])
    return p


def _run(p: dict) -> dict:
    if p["touch"]:
        Path(p["touch"]).touch()
    t0 = time.perf_counter()
    if p["sleep_s"] > 0:
        time.sleep(p["sleep_s"])
    if p["fail"]:
        raise RuntimeError(f"noop task asked to fail (x={p['x']})")
    if p["fail_if_missing"] and not Path(p["fail_if_missing"]).exists():
        raise FileNotFoundError(f"noop task needs {p['fail_if_missing']}")
    return NoopRecord(x=p["x"], value=2.0 * p["x"], slept_s=time.perf_counter() - t0)


if "noop" not in TASK_KINDS:       # loaded once per process, however often it is named
    TASK_KINDS.register("noop", NOOP_VERSION, TaskKind("noop", NOOP_VERSION, NOOP_DEFAULTS, _validate, _run,
                                                       separable=("x", "sleep_s")))
