"""The dispatcher's units of work and its counts.

Tasks are cut into units, one actor call each: a batched kind (resnet_train) groups tasks by its batch key and
cuts each group into `dispatch.batch_size[kind]` tasks that train as one batched computation; other kinds send
`batch_size` tasks (default 1) that run one after another in the actor.
"""
from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass, field

from cluster.spec.model import SweepSpec, Task


@dataclass
class Counts:
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    retried: int = 0
    unrecorded: int = 0          # counted failed, but the store could not take even a failed record
    started: float = field(default_factory=time.monotonic)

    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.failed - self.running)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def eta_s(self) -> float | None:
        el = time.monotonic() - self.started
        if self.finished == 0:
            return None
        return el / self.finished * (self.total - self.finished)

    def as_metrics(self) -> dict:
        m = {"done": self.done, "failed": self.failed, "running": self.running, "pending": self.pending,
             "total": self.total, "retried": self.retried, "unrecorded": self.unrecorded,
             "elapsed_s": time.monotonic() - self.started}
        eta = self.eta_s()
        if eta is not None:
            m["eta_s"] = eta
        if m["elapsed_s"] > 0:
            m["tasks_per_s"] = self.finished / m["elapsed_s"]
        return m


@dataclass
class Unit:
    kind: str
    tasks: list                  # list[Task]
    attempt: int = 1

    def payload(self) -> list[dict]:
        return [{"key": t.key, "params": t.params, "params_json": t.params_json, "group": t.group,
                 "kind_version": t.kind_version, "attempt": self.attempt} for t in self.tasks]


def make_units(tasks: list[Task], spec: SweepSpec) -> dict[str, collections.deque]:
    from htmc.tasks import TASK_KINDS
    by_kind: dict[str, list[Task]] = collections.defaultdict(list)
    for t in tasks:
        by_kind[t.kind].append(t)
    units: dict[str, collections.deque] = {}
    for kind, ts in by_kind.items():
        size = spec.dispatch.batch_for(kind)
        k = TASK_KINDS.get(kind)
        if k.batch_key is not None and size > 1:
            groups: dict = collections.defaultdict(list)
            for t in ts:
                groups[json.dumps(k.batch_key(t.params), default=str)].append(t)
            chunks = [g[i:i + size] for g in groups.values() for i in range(0, len(g), size)]
        else:
            chunks = [ts[i:i + size] for i in range(0, len(ts), size)]
        units[kind] = collections.deque(Unit(kind, c) for c in chunks)
    return units
