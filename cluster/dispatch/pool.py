"""The dispatcher: a pool of Ray actors per task kind, bounded in-flight work, retries when a worker dies.

- Units. Tasks are cut into units, one actor call each (units.py).
- Actors. One actor type (cluster.dispatch.worker.TaskRunner) created per kind with the spec's `num_cpus` / `num_gpus`
  (fractions allowed). As many actors as the cluster fits now, or `dispatch.max_actors[kind]` (pending actors
  are what makes an autoscaler add nodes). When a kind runs out of work its actors are released, so the
  resources go to the other kinds.
- Bounded in flight. Each actor has at most `in_flight_per_actor` calls queued; the driver never submits more.
- Workers write their own records; the driver gets back small summaries for progress and tracking.
- Faults. An actor that dies (killed, OOM, node lost) is restarted by Ray (`max_restarts`) or replaced; the unit
  it was running is resubmitted with attempt + 1, up to `dispatch.max_attempts`, after which its tasks are
  recorded as `failed` ("worker died ..."). Units queued behind it are resubmitted without counting an attempt.
  Tasks of a resubmitted unit that were already recorded `ok` are not run again.
- Store outages. A task whose record could not be written because the store stayed unreachable for
  `results.write_retry_s` comes back with a store_error (TaskOutcome); it is retried later (after another write_retry_s, while
  the other work goes on), up to `dispatch.max_attempts` times, then recorded `failed` with the reason (the
  endpoint and the time spent). If even that record cannot be written, the task is counted failed and
  `unrecorded`, a warning says so, and it has no record: the next run of the spec runs it.
- Ctrl-C (KeyboardInterrupt) kills the actors and re-raises; records already written are complete files.
"""
from __future__ import annotations

import collections
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from cluster.spec.model import SweepSpec, Task
from cluster.store.core import open_store, StoreConfig
from cluster.store.layout import StoreRefused, StoreUnavailable

from .units import Counts, Unit, make_units
from .worker import TaskOutcome, TaskRunner

ACTOR_MAX_RESTARTS = 3
INDEX_FLUSH = 2000            # status-index entries buffered in the driver before they are merged into the store
MAX_REPLACEMENTS = 5          # per slot: actors that died for good and were replaced
WAIT_S = 0.5


class DispatchError(ValueError):
    """The sweep cannot make progress (no actor of a kind could start, workers keep dying on startup)."""


@dataclass
class Slot:
    kind: str
    index: int
    actor: object = None
    name: str = ""
    inflight: list = field(default_factory=list)     # ObjectRefs in submission order (first = running)
    ping: object = None                              # ObjectRef of the startup ping, None once answered
    started: bool = False
    created_at: float = 0.0
    replacements: int = 0
    recovering: bool = False


def waves(tasks: list[Task]) -> list[list[Task]]:
    """The tasks in run order: first those that read no other task's record, then those that do (non-empty
    waves only)."""
    from htmc.tasks import TASK_KINDS
    later = [t for t in tasks if TASK_KINDS.get(t.kind).upstream is not None]
    first = [t for t in tasks if TASK_KINDS.get(t.kind).upstream is None]
    return [w for w in (first, later) if w]


class Dispatcher:
    def __init__(self, spec: SweepSpec, store_cfg: StoreConfig, context: dict, *, local: bool,
                 on_result: Callable[[dict], None] | None = None,
                 on_progress: Callable[[Counts], None] | None = None, progress_every_s: float = 5.0,
                 bar=None):
        self.spec, self.store_cfg, self.ctx, self.local = spec, store_cfg, dict(context), local
        self.on_result = on_result or (lambda r: None)
        self.on_progress = on_progress or (lambda c: None)
        self.progress_every_s = progress_every_s
        self.bar = bar
        self.counts = Counts()
        self.slots: list[Slot] = []
        self._ref_owner: dict = {}          # ObjectRef -> (slot, unit)
        self._pings: dict = {}              # ObjectRef of a ping -> slot
        self._created = 0                   # actors created so far (unique actor names)
        self._store = None
        self._deferred: list = []           # (not before, Unit): tasks whose records the store could not take
        self._store_tries: dict = {}        # task key -> times its record could not be stored
        self.unrecorded: list = []          # (task key, reason): failed, and not even the failed record stored
        self._index: dict = {}              # relpath -> (kind, key, status, validator) of records written
        self._store_down_at = -math.inf     # when the driver's last write to the store gave up
        self._progress_at = -math.inf       # when the last actor call came back (actor start timeout)

    # ------------------------------------------------------------------------------------------------ actors
    def _actor_class(self):
        import ray
        return ray.remote(TaskRunner)

    @staticmethod
    def _kind(name: str) -> tuple:
        """(kind, its record type or None) to hand to the workers. The code of a plugin file
        (htmc.registry.load_plugin) travels by value: the workers cannot import it, since it is no module of the
        project."""
        import ray.cloudpickle
        from htmc.records import RECORDS
        from htmc.registry import PLUGIN_MODULE_PREFIX
        from htmc.tasks import TASK_KINDS
        kind = TASK_KINDS.get(name)
        record = RECORDS.get(name) if name in RECORDS else None
        for obj in (kind.validate, kind.run, kind.batch_key, kind.run_batch, record):
            module = getattr(obj, "__module__", None) or ""
            if module.startswith(PLUGIN_MODULE_PREFIX) and module in sys.modules:
                ray.cloudpickle.register_pickle_by_value(sys.modules[module])
        return kind, record

    def _n_actors(self, kind: str, n_units: int) -> int:
        import ray
        r = self.spec.resources_for(kind)
        cap = self.spec.dispatch.max_actors.get(kind)
        total = ray.cluster_resources()
        fit = math.inf
        if r.num_cpus > 0:
            fit = min(fit, math.floor(total.get("CPU", 0) / r.num_cpus + 1e-9))
        if r.num_gpus > 0:
            fit = min(fit, math.floor(total.get("GPU", 0) / r.num_gpus + 1e-9))
        if fit == 0 and self.local:
            have = f"CPU={total.get('CPU', 0):g}, GPU={total.get('GPU', 0):g}"
            raise DispatchError(
                f"{kind} asks for num_cpus={r.num_cpus:g}, num_gpus={r.num_gpus:g} per actor but this local Ray "
                f"has {have}; lower resources.{kind} in the spec (num_gpus: 0 on a machine without a GPU)")
        n = cap if cap is not None else max(1, int(min(fit, n_units)))
        return max(1, min(n, n_units))

    def _create(self, slot: Slot) -> None:
        r = self.spec.resources_for(slot.kind)
        ctx = {**self.ctx, "num_cpus": r.num_cpus, "num_gpus": r.num_gpus}
        slot.name = f"htmc-{self.ctx['sweep']}-{slot.kind}-{slot.index}-{self.ctx['execution_id'][-8:]}" \
                    f"-{slot.replacements}-{self._created}"
        self._created += 1
        slot.actor = self._actor_class().options(
            name=slot.name, num_cpus=r.num_cpus, num_gpus=r.num_gpus, max_restarts=ACTOR_MAX_RESTARTS,
            max_task_retries=0).remote(*self._kind(slot.kind), self.store_cfg, ctx)
        slot.ping = slot.actor.ping.remote()
        self._pings[slot.ping] = slot
        slot.started, slot.recovering, slot.created_at = False, False, time.monotonic()

    def _kill(self, slot: Slot) -> None:
        import ray
        if slot.actor is not None:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001  already gone
                pass
        slot.actor = None

    def actor_names(self) -> list[str]:
        return [s.name for s in self.slots if s.actor is not None]

    # ------------------------------------------------------------------------------------------------ main loop
    def run(self, tasks: list[Task]) -> Counts:
        """Run every task: those of kinds that consume another task's record (TaskKind.upstream) in a second wave,
        after the first has written the records they read."""
        self.counts = Counts(total=len(tasks))
        for wave in waves(tasks):
            self._run_wave(wave)
        if self.unrecorded:
            print(f"htmc: warning: {len(self.unrecorded)} tasks are counted failed but have no record, because the "
                  f"results store stayed unavailable ({self.unrecorded[-1][1][:600]}); the next run of this spec "
                  f"runs them", file=sys.stderr, flush=True)
        return self.counts

    def _run_wave(self, tasks: list[Task]) -> None:
        units = make_units(tasks, self.spec)
        self.slots = []
        for kind, q in units.items():
            for i in range(self._n_actors(kind, len(q))):
                slot = Slot(kind, i)
                self._create(slot)
                self.slots.append(slot)
        last_progress = 0.0
        try:
            while any(units.values()) or self._ref_owner or self._deferred:
                self._release_deferred(units)
                self._submit(units)
                self._release_idle(units)
                self._update_running()
                waitable = list(self._ref_owner) + list(self._pings)
                if not waitable:
                    if self._deferred:      # only deferred work left: wait for it to come due
                        time.sleep(max(0.0, min(WAIT_S, min(t for t, _ in self._deferred) - time.monotonic())))
                        continue
                    break
                self._take_ready(waitable, units)
                self._check_startup()
                now = time.monotonic()
                if now - last_progress >= self.progress_every_s:
                    last_progress = now
                    self.on_progress(self.counts)
                self._draw()
        except BaseException:
            self.shutdown()
            self._flush_index()
            raise
        self.counts.running = 0
        self._draw()
        self.on_progress(self.counts)
        self.shutdown()
        self._flush_index()

    def _submit(self, units) -> None:
        """Start an actor for a kind with work but none alive (all released or replaced), then fill every actor up
        to in_flight_per_actor calls."""
        for kind, q in units.items():
            if q and not any(s.actor is not None for s in self.slots if s.kind == kind):
                self._create(next(s for s in self.slots if s.kind == kind))
        per_actor = self.spec.dispatch.in_flight_per_actor
        for slot in self.slots:
            if slot.actor is None or slot.recovering:
                continue
            q = units.get(slot.kind)
            while q and len(slot.inflight) < per_actor:
                unit = q.popleft()
                ref = slot.actor.run.remote(unit.payload())
                slot.inflight.append(ref)
                self._ref_owner[ref] = (slot, unit)

    def _take_ready(self, waitable: list, units) -> None:
        """Wait up to WAIT_S for a result or a ping, then handle everything that is ready (not one per wait)."""
        import ray
        ready, _ = ray.wait(waitable, num_returns=1, timeout=WAIT_S)
        if ready:
            ready, _ = ray.wait(waitable, num_returns=len(waitable), timeout=0)
        for ref in ready:
            if ref in self._ref_owner:
                self._handle(ref, units)
            elif ref in self._pings:
                self._handle_ping(ref)

    def shutdown(self) -> None:
        for slot in self.slots:
            self._kill(slot)
            slot.ping = None
        self._ref_owner.clear()
        self._pings.clear()

    # ------------------------------------------------------------------------------------------------ events
    def _handle(self, ref, units) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError
        self._progress_at = time.monotonic()
        slot, unit = self._ref_owner.pop(ref)
        was_running = bool(slot.inflight) and slot.inflight[0] == ref
        if ref in slot.inflight:
            slot.inflight.remove(ref)
        try:
            summaries = ray.get(ref)
        except RayActorError as e:
            self._worker_died(slot, unit, units, e, counts_attempt=was_running)
            return
        except RayTaskError as e:       # run() itself failed (e.g. the store refused a write): retry the unit
            if isinstance(e.cause, StoreRefused):   # a full disk or a denied bucket: stop (issue 22), no retry
                raise StoreRefused(str(e.cause)) from None
            self._retry_or_fail(unit, units, f"worker error: {e}", counts_attempt=True)
            return
        except Exception as e:  # noqa: BLE001  e.g. OutOfMemoryError, ObjectLostError: like a worker death
            self._worker_died(slot, unit, units, e, counts_attempt=was_running)
            return
        slot.started = True
        lost = []
        for s in summaries:
            if s.store_error:
                lost.append(s)
            else:
                self._count(s)
        if lost:
            self._store_failed(unit, lost)

    def _store_failed(self, unit: Unit, lost: list[TaskOutcome]) -> None:
        """Tasks that ran but whose records the store did not take: again later, or failed after max_attempts."""
        by_key = {t.key: t for t in unit.tasks}
        again, give_up, reason = [], [], lost[-1].store_error
        for s in lost:
            t = by_key[s.record["task_key"]]
            n = self._store_tries[t.key] = self._store_tries.get(t.key, 0) + 1
            (again if n < self.spec.dispatch.max_attempts else give_up).append(t)
        if again:
            # Later, not now: the store was just given write_retry_s to come back. Meanwhile other work goes on.
            delay = min(max(self.store_cfg.retry_s, 0.5), 300.0)
            self.counts.retried += len(again)
            self._deferred.append((time.monotonic() + delay, Unit(unit.kind, again, unit.attempt)))
        if give_up:
            self._record_failed(unit.kind, give_up, unit.attempt,
                                f"the record could not be stored {self.spec.dispatch.max_attempts} times: {reason}")

    def _release_deferred(self, units) -> None:
        now = time.monotonic()
        due = [d for d in self._deferred if d[0] <= now]
        if due:
            self._deferred = [d for d in self._deferred if d[0] > now]
            for _, unit in due:
                units.setdefault(unit.kind, collections.deque()).append(unit)

    def _count(self, outcome: TaskOutcome) -> None:
        rec = outcome.record
        if rec.get("status") == "ok":
            self.counts.done += 1
        else:
            self.counts.failed += 1
        if outcome.validator and outcome.written:
            kind, key = rec.get("kind"), rec["task_key"]
            self._index[f"sweep={self.ctx['sweep']}/kind={kind}/{key}.parquet"] = (kind, key, rec["status"],
                                                                                  outcome.validator)
            if len(self._index) >= INDEX_FLUSH:
                self._flush_index()
        if outcome.written:
            self.on_result(rec)

    def _handle_ping(self, ref) -> None:
        import ray
        slot = self._pings.pop(ref)
        if slot.ping is not ref:   # a stale ping of a killed or replaced actor
            return
        slot.ping = None
        try:
            ray.get(ref)
            slot.started, slot.recovering = True, False
        except Exception as e:  # noqa: BLE001  actor could not start or is dead for good
            self._replace(slot, e)

    def _worker_died(self, slot: Slot, unit: Unit, units, exc, *, counts_attempt: bool) -> None:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._retry_or_fail(unit, units, f"worker died ({reason})", counts_attempt=counts_attempt)
        if slot.actor is not None and slot.ping is None:
            # Ray restarts the actor (max_restarts); a ping tells whether it came back or must be replaced.
            slot.recovering = True
            slot.ping = slot.actor.ping.remote()
            self._pings[slot.ping] = slot

    def _replace(self, slot: Slot, exc) -> None:
        for ref in list(slot.inflight):
            slot.inflight.remove(ref)
            # their results will arrive as errors; leave them in _ref_owner so that they are handled then
        self._kill(slot)
        slot.replacements += 1
        if slot.replacements > MAX_REPLACEMENTS:
            raise DispatchError(f"{slot.kind} workers keep dying before they can run tasks; last error: {exc}")
        self._create(slot)

    def _retry_or_fail(self, unit: Unit, units, reason: str, *, counts_attempt: bool) -> None:
        try:
            recorded = self._get_store().read_records(self.ctx["sweep"], unit.kind, [t.key for t in unit.tasks])
        except StoreUnavailable:
            recorded = {}       # run them again: create-once keeps any ok record that did land
        left = []
        for t in unit.tasks:
            rec = recorded.get(t.key)
            if rec is not None and rec.get("execution_id") == self.ctx["execution_id"]:
                # written by this execution before the worker died: count it, do not run it again
                self._count(TaskOutcome({**rec, "kind": unit.kind}))
            else:
                left.append(t)
        if not left:
            return
        attempt = unit.attempt + (1 if counts_attempt else 0)
        if attempt > self.spec.dispatch.max_attempts:
            self._record_failed(unit.kind, left, unit.attempt, f"{reason}; gave up after {unit.attempt} attempts")
            return
        self.counts.retried += len(left)
        units[unit.kind].appendleft(Unit(unit.kind, left, attempt))

    def _record_failed(self, kind: str, tasks: list[Task], attempt: int, reason: str) -> None:
        """The driver writes the failed rows of tasks whose workers kept dying (no worker can)."""
        import socket
        from cluster.provenance import versions
        from .worker import build_record
        ctx = {**self.ctx, **vars(self.spec.resources_for(kind))}
        now = datetime.now(timezone.utc)
        for t in tasks:
            rec = build_record({"key": t.key, "params_json": t.params_json, "group": t.group,
                                "kind_version": t.kind_version, "attempt": attempt}, {}, "failed", reason, now, now,
                               0.0, 1, ctx=ctx, worker=f"driver@{socket.gethostname()}", node="",
                               versions=versions())
            # Within write_retry_s of a give-up, one try each: the driver loop must not wait retry_s per task.
            recent = time.monotonic() - self._store_down_at < self.store_cfg.retry_s
            outcome = TaskOutcome({**rec, "kind": kind})
            try:
                outcome.written, outcome.validator = self._get_store().put_record(
                    self.ctx["sweep"], kind, rec, retry_s=0.0 if recent else None)
            except StoreUnavailable as e:
                self._store_down_at = time.monotonic()
                outcome.written = False
                self.unrecorded.append((t.key, f"{reason}; the failed record was not stored either: {e}"))
                self.counts.unrecorded += 1
            self._count(outcome)

    def _flush_index(self) -> None:
        """Tell the store's status index what was written, so that the next plan need not parse these files
        (best effort: a lost update only costs that next plan some time)."""
        if self._index:
            entries, self._index = self._index, {}
            try:
                self._get_store().merge_index(self.ctx["sweep"], entries)
            except Exception:  # noqa: BLE001
                pass

    def _get_store(self):
        if self._store is None:
            self._store = open_store(self.store_cfg)
        return self._store

    # ------------------------------------------------------------------------------------------------ housekeeping
    def _release_idle(self, units) -> None:
        """Kill actors whose kind has no work left, so their resources serve other kinds."""
        for slot in self.slots:
            if slot.actor is not None and not units.get(slot.kind) and not slot.inflight \
                    and not any(s is slot for s, _ in self._ref_owner.values()) \
                    and not any(u.kind == slot.kind for _, u in self._deferred):
                self._kill(slot)
                slot.ping = None
                slot.started = False

    def _check_startup(self) -> None:
        timeout = self.spec.dispatch.actor_start_timeout_s
        now = time.monotonic()
        by_kind = collections.defaultdict(list)
        for s in self.slots:
            if s.actor is not None:
                by_kind[s.kind].append(s)
        for kind, slots in by_kind.items():
            # actors of other kinds that started hold the resources this kind waits for (a 2-CPU laptop runs
            # ladders first, then the nets): only a cluster where nothing runs and nothing finishes is stuck
            busy = any(s.started for k, ss in by_kind.items() if k != kind for s in ss)
            waited = min(now - max(s.created_at, self._progress_at) for s in slots)
            if all(not s.started for s in slots) and not busy and waited > timeout:
                r = self.spec.resources_for(kind)
                raise DispatchError(
                    f"no {kind} actor started within {timeout:g} s (each asks for num_cpus={r.num_cpus:g}, "
                    f"num_gpus={r.num_gpus:g}); does the cluster have such resources, or can it scale up?")

    def _update_running(self) -> None:
        running = 0
        for slot in self.slots:
            if slot.actor is not None and slot.started and slot.inflight:
                owner = self._ref_owner.get(slot.inflight[0])
                if owner:
                    running += len(owner[1].tasks)
        self.counts.running = running

    def _draw(self) -> None:
        if self.bar is None:
            return
        c = self.counts
        self.bar.n = c.finished
        self.bar.set_postfix_str(f"done={c.done} failed={c.failed} running={c.running} pending={c.pending}",
                                 refresh=False)
        self.bar.refresh()
