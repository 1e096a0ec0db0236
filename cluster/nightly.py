"""Nightly sweeps (issue 7): one Ray job per night, idempotent, incremental, with a regression report and costs.

`htmc nightly SPEC --job-server URL [--date D]` submits the night as a Ray job whose submission_id is
nightly-<sweep>-<date>; the job runs `python -m jobs.nightly SPEC --here --date D`, which is run_night:

  1. the spec's keys still missing, and the failed ones (new grid values, failures of earlier nights);
  2. `nightly.replicates` ok keys from before tonight re-run as fresh replicates, into the store partition
     `<sweep>.rep-<date>` (one record per key and night; the sample is fixed by the date, so a rerun of the same
     night resumes it rather than drawing another);
  3. the analysis report, with a regression section against the previous night's summary and the costs;
  4. the night's summary as `_nightly/sweep=<name>/<date>.json` in the results store (written last: a night
     that broke before it is resumed by running it again; once it exists the night is done and a rerun is a
     no-op).

Exit status of the night: 0, or 1 when something regressed (so cron mail or a CI alert fires), 3 when skipped.

Like a Kubernetes CronJob, a night has a concurrency policy for when an earlier night's job still runs (forbid:
skip tonight; replace: stop the earlier job; allow: run both) and a starting deadline counted from its scheduled
time (`nightly.schedule`, UTC): a night that cannot start by then is skipped rather than run late.
"""
from __future__ import annotations

import dataclasses
import json
import random
import re
import sys
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from .dispatch.submission import TERMINAL, build_submission, open_jobs, submit_job, wait_for_job
from .service import compact_best_effort, run_sweep
from .spec.grid import expand
from .spec.model import SweepSpec
from .store.core import StoreConfig, open_store

SKIPPED = 3          # exit status of a night that was not run (policy or deadline); 1 is kept for regressions


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_date(text: str | None) -> str:
    """YYYY-MM-DD (default: today, UTC)."""
    if text is None:
        return datetime.now(timezone.utc).strftime("%Y-%m-%d")
    try:
        return Date.fromisoformat(text).isoformat() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else _bad(text)
    except ValueError:
        return _bad(text)


def _bad(text):
    raise ValueError(f"--date must be a calendar date YYYY-MM-DD, got {text!r}")


def night_id(spec: SweepSpec, date: str) -> str:
    return f"nightly-{spec.name}-{date}"


def replicate_sweep(spec: SweepSpec, date: str) -> str:
    return f"{spec.name}.rep-{date}"


def deadline_passed(spec: SweepSpec, date: str, now: datetime | None = None) -> str | None:
    """Why the night is too late to start, or None."""
    if spec.nightly.starting_deadline_s is None:
        return None
    now = now or datetime.now(timezone.utc)
    scheduled = datetime.fromisoformat(date).replace(tzinfo=timezone.utc) + \
        timedelta(minutes=spec.nightly.schedule_minutes)
    latest = scheduled + timedelta(seconds=spec.nightly.starting_deadline_s)
    if now > latest:
        return (f"night {date} of '{spec.name}' was scheduled for {scheduled:%Y-%m-%d %H:%M} UTC and its starting "
                f"deadline ({spec.nightly.starting_deadline_s:g} s) passed at {latest:%Y-%m-%d %H:%M} UTC; skipped "
                f"(nightly.starting_deadline_s in the spec)")
    return None


# ------------------------------------------------------------------------------------------ night documents
def _doc_relpath(sweep: str, date: str) -> str:
    return f"_nightly/sweep={sweep}/{date}.json"      # '_': never part of the Parquet dataset


def put_night(store, sweep: str, date: str, doc: dict) -> None:
    store._put_bytes(_doc_relpath(sweep, date), json.dumps(doc, sort_keys=True, indent=1, allow_nan=False).encode())


def get_night(store, sweep: str, date: str) -> dict | None:
    data = store._get_bytes(_doc_relpath(sweep, date))
    return None if data is None else json.loads(data)


def night_dates(store, sweep: str) -> list[str]:
    names = store._list_dir(_doc_relpath(sweep, "x").rsplit("/", 1)[0] + "/", suffix=".json")
    return sorted(n.rsplit("/", 1)[-1][:-5] for n in names if re.fullmatch(r".*/\d{4}-\d{2}-\d{2}\.json", n))


def previous_night(store, sweep: str, date: str) -> tuple[str | None, dict | None]:
    earlier = [d for d in night_dates(store, sweep) if d < date]
    return (earlier[-1], get_night(store, sweep, earlier[-1])) if earlier else (None, None)


# ------------------------------------------------------------------------------------------------ the night
@dataclass
class NightResult:
    sweep: str
    date: str
    state: str                          # done | already_done | skipped
    message: str = ""
    regressions: list = field(default_factory=list)
    previous: str | None = None
    ran: int = 0
    failed: int = 0
    replicates: int = 0
    report: str | None = None
    run_id: str | None = None
    costs: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return SKIPPED if self.state == "skipped" else (1 if self.regressions else 0)

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "exit_code": self.exit_code}


def replicate_sample(spec: SweepSpec, date: str, ok_keys) -> list[str]:
    """The night's replicates: a sample of the given ok keys, fixed by (sweep, date)."""
    ok_keys = sorted(ok_keys)
    n = min(spec.nightly.replicates, len(ok_keys))
    return sorted(random.Random(f"{spec.name}/{date}").sample(ok_keys, n))


def run_night(spec: SweepSpec, *, date: str, now: datetime | None = None, address: str | None = None,
              out: str | Path | None = None, progress: bool = True,
              say: Callable[[str], None] = _say) -> NightResult:
    """Run one night here (inside the night's Ray job, or locally). See the module docstring."""
    late = deadline_passed(spec, date, now)
    if late:
        say(late)
        return NightResult(spec.name, date, "skipped", late)
    store = open_store(StoreConfig.from_spec(spec.results))
    store.check(create_bucket=spec.results.create_bucket)
    if get_night(store, spec.name, date) is not None:
        msg = f"night {date} of '{spec.name}' already ran (its summary is in the store); nothing to do"
        say(msg)
        return NightResult(spec.name, date, "already_done", msg)
    tags = {"htmc.nightly": date, "htmc.nightly.id": night_id(spec, date)}
    main, reps = _run_tasks(spec, store, date, tags, address=address, progress=progress, say=say)
    res = _report(spec, store, date, main, reps, tags, Path(out) if out else None)
    say(res.message)
    for r in res.regressions:
        say(f"  REGRESSION {r['kind']}: {r['message']}")
    return res


def _run_tasks(spec: SweepSpec, store, date: str, tags: dict, *, address, progress, say) -> tuple:
    """Tonight's sweeps: the missing and failed keys, then the replicates. (main run's RunSummary, replicate keys)"""
    keys = {t.key for t in expand(spec)}
    reps = replicate_sample(spec, date, [k for k, (_, st) in store.statuses(spec.name).items()
                                         if st == "ok" and k in keys])
    main = run_sweep(spec, retry_failed=True, address=address, progress=progress, say=say, tags=tags)
    if reps:
        say(f"night {date}: re-running {len(reps)} ok tasks as replicates into '{replicate_sweep(spec, date)}'")
        run_sweep(_replicate_spec(spec, date), keys=reps, address=address, progress=progress, say=say,
                  tags={**tags, "htmc.role.nightly": "replicates"})
    # each night merges its new per-task records into the sweeps' compacted tables, whatever their number
    # (issue 22: replicates add files every night); best effort: the report reads files and tables alike
    for name in [spec.name] + ([replicate_sweep(spec, date)] if reps else []):
        compact_best_effort(store, name, say)
    return main, reps


def _replicate_spec(spec: SweepSpec, date: str) -> SweepSpec:
    """The spec of tonight's replicates: its own store partition, the sweep's experiment, no child runs."""
    return dataclasses.replace(spec, name=replicate_sweep(spec, date), tracking=dataclasses.replace(
        spec.tracking, experiment=spec.experiment, children="off"))


def _report(spec: SweepSpec, store, date: str, main, reps: list, tags: dict, out: Path | None) -> NightResult:
    """Compare tonight with the previous night, write and log the report, and store the night's summary (last)."""
    from analysis.costs import cost_totals
    from analysis.nightly import compare_nights, night_summary, regression_html
    from analysis.report import summarize_records

    from .analyze import analyze_sweep
    records = store.load(spec.name)
    rep_records = store.load(replicate_sweep(spec, date)) if reps else None
    prev_date, prev = previous_night(store, spec.name, date)
    costs = cost_totals(records, **vars(spec.costs))
    summary = summarize_records(records)
    night = night_summary(records, summary.functions, sweep=spec.name, date=date, replicates=rep_records,
                          costs=costs, meta={"spec_hash": spec.spec_hash, "execution_id": main.execution_id,
                                             "previous": prev_date})
    regressions = compare_nights(prev, night, slower_factor=spec.nightly.slower_factor,
                                 slower_min_s=spec.nightly.slower_min_s)
    night["regressions"] = regressions
    out_dir = out or Path("reports") / spec.name / "nightly" / date
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, obj in (("night", night), ("regressions", regressions)):
        files[name] = out_dir / f"{name}.json"
        files[name].write_text(json.dumps(obj, sort_keys=True, indent=1))
    report = analyze_sweep(
        spec, out_dir, records=records, summary=summary, title=f"htmc nightly '{spec.name}' {date}",
        sections=[("regressions", "Regressions against the previous night",
                   regression_html(regressions, prev_date, date))], files=files,
        metrics={"nightly_regressions": len(regressions), "nightly_usd": costs["total"]["usd"] or 0.0},
        tags={**tags, "htmc.regressions": len(regressions), "htmc.nightly.previous": prev_date or "none",
              **{f"htmc.regression.{i}": r["message"] for i, r in enumerate(regressions[:50])}},
        run_id=main.parent_run_id, new_run=(night_id(spec, date), {"htmc.role": "nightly", **tags}))
    put_night(store, spec.name, date, night)
    return NightResult(spec.name, date, "done", previous=prev_date, regressions=regressions, ran=main.done,
                       failed=main.failed, replicates=len(reps), report=str(report.report),
                       run_id=report.mlflow_run_id, costs=costs,
                       message=f"night {date} of '{spec.name}': {main.done} ok and {main.failed} failed of "
                               f"{main.scheduled} scheduled, {len(reps)} replicates; "
                               + (f"{len(regressions)} regression(s) against {prev_date}" if prev_date else
                                  "no previous night to compare with") + f". Report: {report.report}")


# ------------------------------------------------------------------------------------------------ submission
def submit_night(spec: SweepSpec, spec_path: str, *, address: str, date: str, policy: str | None = None,
                 now: datetime | None = None, working_dir: str = ".", results: str | None = None,
                 tracking_uri: str | None = None, forward_credentials: bool = False, wait: bool = False,
                 timeout_s: float = 24 * 3600.0, stop_timeout_s: float = 120.0, plugins=(),
                 say: Callable[[str], None] = _say) -> dict:
    """Submit the night as the Ray job nightly-<sweep>-<date> under the concurrency policy and starting deadline.
    Returns {"submission_id", "submitted", "status", "reason"}; reason says why nothing was submitted."""
    policy = policy or spec.nightly.concurrency
    sid = night_id(spec, date)
    late = deadline_passed(spec, date, now)
    if late:
        say(late)
        return {"submission_id": sid, "submitted": False, "status": None, "reason": "deadline"}
    entrypoint, runtime_env = build_submission(
        spec, spec_path, working_dir=working_dir, forward_credentials=forward_credentials, results=results,
        tracking_uri=tracking_uri, module="jobs.nightly", extra_args=("--here", "--date", date), plugins=plugins)
    client, jobs = open_jobs(address, f"nightly-{spec.name}-")
    if sid in jobs:
        say(f"night {date} of '{spec.name}' was already submitted as job {sid} ({jobs[sid]}); nothing to do")
        return {"submission_id": sid, "submitted": False, "status": jobs[sid], "reason": "exists"}
    running = sorted(j for j, st in jobs.items() if st not in TERMINAL)
    if running and policy == "forbid":
        say(f"job {running[-1]} of an earlier night is still {jobs[running[-1]]}; concurrency policy "
            f"'forbid': not submitting {sid} (use --policy replace to stop it, or allow to run both)")
        return {"submission_id": sid, "submitted": False, "status": None, "reason": "forbid",
                "running": running}
    if running and policy == "replace":
        for j in running:
            say(f"concurrency policy 'replace': stopping job {j} of an earlier night")
            client.stop_job(j)
        for j in running:
            wait_for_job(client, j, stop_timeout_s, poll_s=0.5)
    return {"submission_id": sid, "submitted": True, "reason": None,
            "replaced": running if policy == "replace" else [], **submit_job(
                client, sid, entrypoint, runtime_env,
                {"htmc.sweep": spec.name, "htmc.spec_hash": spec.spec_hash, "htmc.nightly": date},
                announce=f"submitted night {date} of '{spec.name}' as job {sid}: {entrypoint}", wait=wait,
                timeout_s=timeout_s, say=say)}
