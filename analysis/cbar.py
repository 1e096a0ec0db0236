"""C̄(f, ε), the circuit-size upper bound per target function and ε (DESIGN §2.3): every verified observation of
the ok circuit_ladder rungs and circuit_search records, and per (function, ε) the smallest. No ray/mlflow/boto3."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from . import records as R

# `optimal` is what points written before issue 12 call optimal_in_format (same meaning, no format stored)
_POINT_TYPE = pa.struct([("eps", pa.float64()), ("gates", pa.int64()), ("method", pa.string()),
                         ("optimal_in_format", pa.bool_()), ("optimal", pa.bool_()), ("max_error", pa.float64()),
                         ("bits_in", pa.int64()), ("bits_out", pa.int64()), ("exact_rounded", pa.bool_())])
_POINT_COLS = ["fid", "eps", "gates", "method", "optimal_in_format", "max_error", "bits_in", "bits_out", "exact_rounded",
               "task_key", "source"]


def _explode_points(points_json: pa.ChunkedArray) -> pd.DataFrame:
    """points_json (a JSON list of search records per ladder) -> one row per rung, with `row` = the ladder's index.
    Parsed by Arrow's multithreaded JSON reader: one line per ladder, only the fields analysis reads."""
    if len(points_json) == 0:
        return pd.DataFrame({"row": pd.Series([], dtype=np.int64), **{f.name: [] for f in _POINT_TYPE}})
    texts = pc.fill_null(points_json.cast(pa.string()), "[]").to_pylist()
    lines = "\n".join(f'{{"row":{i},"p":{s if s.strip() else "[]"}}}' for i, s in enumerate(texts)).encode()
    longest = max((len(s) for s in texts), default=0)
    schema = pa.schema([("row", pa.int64()), ("p", pa.list_(_POINT_TYPE))])
    try:
        t = pajson.read_json(pa.BufferReader(lines),
                             read_options=pajson.ReadOptions(block_size=max(1 << 22, 4 * longest + 64)),
                             parse_options=pajson.ParseOptions(explicit_schema=schema,
                                                               unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return _explode_points_slow(texts)   # some ladder's points are not what the schema says: go row by row
    lists = t.column("p").combine_chunks()
    parents = pc.list_parent_indices(lists).to_numpy()
    flat = pc.list_flatten(lists)
    rows = t.column("row").to_numpy()[parents]
    return pa.Table.from_arrays([pa.array(rows)] + [flat.field(f.name) for f in _POINT_TYPE],
                                names=["row"] + [f.name for f in _POINT_TYPE]).to_pandas()


def _explode_points_slow(texts: list[str]) -> pd.DataFrame:
    rows = []
    for i, s in enumerate(texts):
        try:
            pts = json.loads(s) if s else []
        except ValueError:
            pts = []
        for p in pts if isinstance(pts, list) else []:
            if isinstance(p, dict):
                rows.append({"row": i, **{f.name: p.get(f.name) for f in _POINT_TYPE}})
    df = pd.DataFrame(rows, columns=["row"] + [f.name for f in _POINT_TYPE])
    for c in ("eps", "gates", "max_error", "bits_in", "bits_out"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def circuit_points(ladders: pa.Table, lad_fid: np.ndarray, searches: pa.Table, srch_fid: np.ndarray) -> pd.DataFrame:
    """All verified (fid, eps, gates) observations of ok ladder rungs (first) and ok searches."""
    frames = []
    if len(ladders):
        pts = _explode_points(R.column(ladders, "points_json", pa.string()))
        row = pts["row"].to_numpy()
        task = np.asarray(R.column(ladders, "task_key", pa.string()).to_numpy(zero_copy_only=False), dtype=object)
        pts["fid"] = lad_fid[row]
        pts["task_key"] = task[row]
        pts["source"] = "circuit_ladder"
        pts["optimal_in_format"] = pts["optimal_in_format"].where(pts["optimal_in_format"].notna(), pts["optimal"])
        frames.append(pts)
    if len(searches):
        df = R.frame(searches, ["task_key", "eps", "gates", "method", "optimal_in_format", "max_error", "bits_in",
                                "bits_out", "exact_rounded"])
        df["fid"] = srch_fid
        df["source"] = "circuit_search"
        frames.append(df)
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=np.int64 if c == "fid" else float) for c in _POINT_COLS})
    out = pd.concat([f[_POINT_COLS] for f in frames], ignore_index=True)
    out["eps"] = pd.to_numeric(out["eps"], errors="coerce").astype(float)
    out["gates"] = pd.to_numeric(out["gates"], errors="coerce").astype(float)
    return out


def cbar_table(obs: pd.DataFrame) -> pd.DataFrame:
    """C̄(f, ε): per (fid, eps), the observation with the fewest verified gates (ties: the first seen, so a
    ladder's own rung wins over an equal search). Rungs with no circuit or 0 gates (a constant or a wire) are
    left out, as htmc.rates.ladder leaves them out of its fits. n_obs counts the observations at that (fid, eps).
    exact_rounded: some observation with the least gates is the exactly rounded circuit, so C̄ there is the
    exact circuit's size (DESIGN §2.3 'Saturation'); a smaller circuit elsewhere means it is not."""
    e, g, f = obs["eps"].to_numpy(float), obs["gates"].to_numpy(float), obs["fid"].to_numpy(np.int64)
    good = np.flatnonzero(np.isfinite(e) & (e > 0) & np.isfinite(g) & (g > 0) & (f >= 0))
    order = good[np.lexsort((np.arange(len(good)), g[good], -e[good], f[good]))]
    fo, eo = f[order], e[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (fo[1:] != fo[:-1]) | (eo[1:] != eo[:-1])
    starts = np.flatnonzero(first)
    n_obs = np.diff(np.append(starts, len(order)))
    best = obs.iloc[order[first]].rename(columns={"gates": "cbar"}).reset_index(drop=True)
    best["n_obs"] = n_obs
    if len(order):
        best["exact_rounded"] = _exact_at_min(obs, order, starts)
    return best


def _exact_at_min(obs: pd.DataFrame, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per (fid, eps) group of `order` (sorted by gates within a group): any exact_rounded among the least."""
    flag = R.bool_column(obs, "exact_rounded")[order]
    g = obs["gates"].to_numpy(float)[order]
    at_min = g == np.repeat(g[starts], np.diff(np.append(starts, len(order))))
    return np.logical_or.reduceat(flag & at_min, starts)
