"""The typed spec: one frozen dataclass per section, the task and the sweep (the format is in __init__.py)."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from htmc.tasks import TASK_KINDS

from htmc.records import canonical_json

SPEC_VERSION = "1"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CHILDREN_MODES = ("task", "group", "off")
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks", "databricks-uc",
                    "uc")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CONCURRENCY_POLICIES = ("forbid", "replace", "allow")   # the names of Kubernetes CronJob's concurrencyPolicy


class SpecError(ValueError):
    """A spec that cannot run. The message names the file, the key's location and its line when known."""


@dataclass(frozen=True)
class ResultsSpec:
    uri: str = "./results"
    endpoint_url: str | None = None
    region: str | None = None
    create_bucket: bool = False
    write_retry_s: float = 60.0

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")


@dataclass(frozen=True)
class TrackingSpec:
    uri: str = DEFAULT_TRACKING_URI
    experiment: str | None = None
    children: str = "task"
    artifact_location: str | None = None


@dataclass(frozen=True)
class Resources:
    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass(frozen=True)
class DispatchSpec:
    max_attempts: int = 3
    batch_size: dict = field(default_factory=dict)      # kind -> tasks per actor call
    max_actors: dict = field(default_factory=dict)      # kind -> cap
    in_flight_per_actor: int = 2
    actor_start_timeout_s: float = 300.0

    def batch_for(self, kind: str) -> int:
        """dispatch.batch_size of the kind, else the kind's own default (htmc.tasks.TaskKind.default_batch)."""
        return int(self.batch_size.get(kind, TASK_KINDS.get(kind).default_batch if kind in TASK_KINDS else 1))


@dataclass(frozen=True)
class CostSpec:
    """Dollars per resource-hour; None: that resource is not priced (costs show as resource-hours only)."""
    cpu_hour: float | None = None
    gpu_hour: float | None = None


@dataclass(frozen=True)
class NightlySpec:
    replicates: int = 0
    concurrency: str = "forbid"
    schedule: str = "02:00"
    starting_deadline_s: float | None = None       # None: no deadline (as Kubernetes' startingDeadlineSeconds)
    slower_factor: float = 3.0
    slower_min_s: float = 1.0

    @property
    def schedule_minutes(self) -> int:
        h, m = self.schedule.split(":")
        return int(h) * 60 + int(m)


@dataclass(frozen=True)
class GroupSpec:
    kind: str
    name: str
    params: dict
    grid: dict
    for_each: str | None = None   # an earlier group: one task per task of it, given as the kind's upstream param


@dataclass(frozen=True)
class Task:
    key: str
    kind: str
    kind_version: str
    params: dict              # canonical (validated, defaults filled)
    group: str

    @property
    def params_json(self) -> str:
        return canonical_json(self.params)


@dataclass(frozen=True)
class Plan:
    """The validated tasks of a spec's groups (made once by parse_spec: validation is not free)."""
    groups: tuple             # the SweepSpec.groups they were expanded from
    tasks: Sequence           # Task, in spec order, deduplicated by key (cluster.spec.grid.TaskList)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    groups: tuple
    results: ResultsSpec
    tracking: TrackingSpec
    resources: dict           # kind -> Resources (every kind used has one)
    dispatch: DispatchSpec
    description: str
    source: str               # file path or "<string>"
    text: str                 # the YAML as given (logged as the parent run's artifact, after redaction)
    raw: dict                 # the validated mapping, overrides applied (what the spec hash covers)
    costs: CostSpec = field(default_factory=CostSpec)
    nightly: NightlySpec = field(default_factory=NightlySpec)
    plan: Plan | None = field(default=None, compare=False, repr=False)   # None: not validated yet (expand does)

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.raw).encode()).hexdigest()[:16]

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or f"htmc-{self.name}"

    def resources_for(self, kind: str) -> Resources:
        return self.resources.get(kind, Resources())

    def kinds(self) -> list[str]:
        return sorted({g.kind for g in self.groups})
