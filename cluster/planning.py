"""`htmc sweep plan`: what a spec will do before it runs (issue 22 C). Reads the spec and the store; writes nothing.

Per group (and its kind): the tasks in total, done (an ok record), failed (a failed record; `htmc sweep run` skips
them unless --retry-failed) and to run (no record). For the tasks to run, an estimate from the store's ok records
of the same group and kind: seconds a task (their mean wall_s), CPU-hours and GPU-hours (tasks x seconds x the
spec's num_cpus / num_gpus of the kind: reserved resources, as records' cpu_seconds and gpu_seconds count them,
analysis/costs.py), dollars (the spec's `costs:` prices) and wall time. A group with no such record gets no
estimate: its numbers are null and the totals say how many tasks they leave out. Nothing is invented.

Wall time: the tasks' summed wall time (as if one worker ran them, `task_hours`) and, where the store shows how
many tasks ran at once (`parallelism`: summed wall_s / span of finished_at - started_at of the execution with
the most records), `wall_hours` = task_hours / parallelism.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .spec.grid import expand
from .spec.model import SweepSpec
from .store.core import StoreConfig, open_store

RECORD_COLUMNS = ["task_key", "group", "status", "wall_s", "started_at", "finished_at", "execution_id"]


def sweep_plan(spec: SweepSpec) -> dict:
    """The plan of a spec against its store, JSON-ready (keys documented in docs/CLUSTER.md, "Planning")."""
    from .keyarray import count_by_group
    store = open_store(StoreConfig.from_spec(spec.results))
    store.check(readonly=True)
    tasks = expand(spec)
    kinds = spec.kinds()
    existing: dict = {}
    for kind in kinds:      # per kind: reads the status index without rewriting it (it is compacted only when
        existing.update(store.status_arrays(spec.name, kind))      # asked for every kind)
    # keys as 64-bit integers, counted with numpy (cluster/keyarray.py): 10^6 keys against 10^6 records in ~0.1 s
    per_group, _ = count_by_group(tasks.key_ints(), existing)
    rows = [{"group": group, "kind": kind, "total": total, "done": done, "failed": failed,
             "to_run": total - done - failed} for group, kind, total, done, failed in per_group]
    per_task, parallelism = _observed(store, spec.name, kinds, existing)
    groups = [_estimate(spec, row, per_task.get((row["group"], row["kind"]))) for row in rows]
    return {"sweep": spec.name, "spec_hash": spec.spec_hash, "results": store.describe(), "groups": groups,
            "totals": _totals(groups, parallelism), "prices": dict(vars(spec.costs)), "parallelism": parallelism,
            "unusable_files": len(store.corrupt)}


def _observed(store, sweep: str, kinds: list[str], existing: dict) -> tuple[dict, float | None]:
    """({(group, kind): mean wall_s of its ok records}, the parallelism of the execution with most records).
    Summed by Arrow group-bys: at 10^6 records, rows as Python objects took 11 s (issue 22)."""
    if not any(len(keys) for keys, _ in existing.values()):
        return {}, None
    sums: dict = {}
    runs: dict = {}
    for kind in kinds:
        t = _timed_ok(store.load(sweep, kind, columns=RECORD_COLUMNS))
        if t is None:
            continue
        by_group = t.group_by("group", use_threads=False).aggregate([("wall_s", "count"), ("wall_s", "sum")])
        for g, n, total in zip(*(by_group.column(c).to_pylist() for c in ("group", "wall_s_count", "wall_s_sum"))):
            sums[(g, kind)] = (n, total)
        valid = pc.and_(pc.and_(pc.is_valid(t["started_at"]), pc.is_valid(t["finished_at"])),
                        pc.is_valid(t["execution_id"]))
        by_run = t.filter(valid).group_by("execution_id", use_threads=False).aggregate(
            [("wall_s", "count"), ("wall_s", "sum"), ("started_at", "min"), ("finished_at", "max")])
        for e, n, w, s, f in zip(*(by_run.column(c).to_pylist() for c in (
                "execution_id", "wall_s_count", "wall_s_sum", "started_at_min", "finished_at_max"))):
            r = runs.setdefault(e, [0, 0.0, s, f])
            r[0] += n
            r[1] += w
            r[2], r[3] = min(r[2], s), max(r[3], f)
    per_task = {gk: total / n for gk, (n, total) in sums.items()}
    parallelism = None
    if runs:
        n, work, start, end = max(runs.values(), key=lambda r: r[0])
        span = (end - start).total_seconds()
        parallelism = max(1.0, work / span) if span > 0 else None
    return per_task, parallelism


def _timed_ok(t: pa.Table) -> pa.Table | None:
    """The `ok` records with a finite wall_s, with every column of RECORD_COLUMNS (null where the store's records
    lack one); None when there are none."""
    if not t.num_rows:
        return None
    types = {"group": pa.string(), "status": pa.string(), "wall_s": pa.float64(), "execution_id": pa.string(),
             "started_at": pa.timestamp("us", tz="UTC"), "finished_at": pa.timestamp("us", tz="UTC")}
    cols = {c: t.column(c) if c in t.column_names else pa.nulls(t.num_rows, types[c]) for c in RECORD_COLUMNS}
    cols["wall_s"] = pc.cast(cols["wall_s"], pa.float64())
    keep = pc.and_(pc.equal(cols["status"], "ok"), pc.is_finite(cols["wall_s"]))     # null: not kept
    t = pa.table(cols).filter(keep)
    return t if t.num_rows else None


def _usd(cpu_hours: float, gpu_hours: float, cpu_hour: float | None, gpu_hour: float | None) -> float | None:
    """Dollars as analysis.costs.cost_table prices them: the priced resources only; None when none is priced."""
    parts = [h * p for h, p in ((cpu_hours, cpu_hour), (gpu_hours, gpu_hour)) if p is not None]
    return sum(parts) if parts else None


def _estimate(spec: SweepSpec, row: dict, seconds: float | None) -> dict:
    res = spec.resources_for(row["kind"])
    if seconds is None:
        return {**row, "estimate": False, "seconds_per_task": None, "task_hours": None, "cpu_hours": None,
                "gpu_hours": None, "usd": None}
    task_hours = row["to_run"] * seconds / 3600.0
    cpu, gpu = task_hours * res.num_cpus, task_hours * res.num_gpus
    return {**row, "estimate": True, "seconds_per_task": seconds, "task_hours": task_hours, "cpu_hours": cpu,
            "gpu_hours": gpu, "usd": _usd(cpu, gpu, spec.costs.cpu_hour, spec.costs.gpu_hour)}


def _totals(groups: list[dict], parallelism: float | None) -> dict:
    est = [g for g in groups if g["estimate"]]
    out = {k: sum(g[k] for g in groups) for k in ("total", "done", "failed", "to_run")}
    # sums over the estimated groups only; null when no group has an estimate (never a made-up 0)
    out.update({k: sum(g[k] for g in est) if est else None for k in ("task_hours", "cpu_hours", "gpu_hours")})
    usds = [g["usd"] for g in est if g["usd"] is not None]
    out["usd"] = sum(usds) if usds else None
    out["wall_hours"] = out["task_hours"] / parallelism if est and parallelism else None
    out["unestimated_tasks"] = sum(g["to_run"] for g in groups if not g["estimate"])
    return out


def format_plan(plan: dict) -> str:
    """The plan as a plain-text table (the command's default output)."""
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = [f"sweep {plan['sweep']}  ({plan['results']})",
             f"{'group':<20} {'kind':<15} {'total':>9} {'done':>9} {'failed':>7} {'to run':>9} {'s/task':>9} "
             f"{'CPU-h':>9} {'GPU-h':>9} {'dollars':>10}"]
    for g in plan["groups"]:
        tail = (f"{num(g['seconds_per_task'], '.3g'):>9} {num(g['cpu_hours'], '.4g'):>9} "
                f"{num(g['gpu_hours'], '.4g'):>9} {num(g['usd'], ',.2f'):>10}") if g["estimate"] else \
            "  no estimate (no ok record of this group and kind yet)"
        lines.append(f"{g['group'][:20]:<20} {g['kind'][:15]:<15} {g['total']:>9} {g['done']:>9} {g['failed']:>7} "
                     f"{g['to_run']:>9} {tail}")
    t = plan["totals"]
    lines.append(f"{'total':<36} {t['total']:>9} {t['done']:>9} {t['failed']:>7} {t['to_run']:>9} {'':>9} "
                 f"{num(t['cpu_hours'], '.4g'):>9} {num(t['gpu_hours'], '.4g'):>9} {num(t['usd'], ',.2f'):>10}")
    wall = (f"{t['wall_hours']:.3g} h at the parallelism of the store's largest execution ({plan['parallelism']:.3g} "
            f"tasks at once)" if t["wall_hours"] is not None else "no estimate (no timed records in the store)")
    lines.append(f"task time {num(t['task_hours'], '.3g')} h (one worker); wall time {wall}")
    if t["unestimated_tasks"]:
        lines.append(f"{t['unestimated_tasks']} tasks to run have no estimate (their group and kind have no ok "
                     f"record yet): the hours and dollars above leave them out")
    if t["failed"]:
        lines.append(f"{t['failed']} failed tasks are not run again unless `htmc sweep run --retry-failed`")
    p = plan["prices"]
    lines.append("prices: " + (", ".join(f"{k} ${v:g}" for k, v in p.items() if v is not None)
                               or "none (set costs.cpu_hour / costs.gpu_hour in the spec)"))
    return "\n".join(lines)
