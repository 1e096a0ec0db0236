"""Result records as analysis/ receives them: normalising, splitting by kind, and naming each target function.

analysis/ is handed tables (a pyarrow Table or a pandas DataFrame of records, the schema of cluster/schema.py:
common columns, `sweep` and `kind`, then per-kind columns) and never reads a store itself (DESIGN §3). Everything
here tolerates missing columns and empty tables: a column that is absent reads as all-null.

Function identity. A target is its family name, its version, its canonical parameters and its error domain:
`function_key = "<name>@<version>|<canonical function_params JSON>|<domain>"` (DESIGN §4: records of two versions
never merge into one C̄). The version is the record's `function_version` column, else the one in `params_json`;
records that name none (hand-made tables) key as "<name>|...". Name and parameters come from `params_json`
(the canonical JSON the task key was made from, present in failed records too), found with vectorised RE2
regexes (~2 s for a million records on a loaded 2-core machine); each distinct target is then canonicalised once
in Python, and rows the regexes cannot read (deeper nesting, hand-made tables) fall back to json.loads.
Rows get an integer `fid` into a small catalogue of targets, so joins and groupings never touch strings.
"""
from __future__ import annotations

import json
import warnings
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from htmc import records


def _declared(cls, names: list[str]) -> list[str]:
    """The columns analysis reads of a record class: a selection, checked against the one definition."""
    unknown = sorted(set(names) - {n for n, _ in records.columns(cls)})
    if unknown:
        raise AssertionError(f"{cls.__name__} declares no column(s) {unknown}")
    return list(names)


# Columns analysis reads of the nets (anything else is left in the table, unread).
NET_COLS = _declared(records.TrainRecord, ["function", "function_version", "width", "depth", "rank", "lam", "reg",
                                           "steps", "lr", "seed", "n_train", "d", "sup_error", "rms_error",
                                           "train_mse", "nnz", "n_params", "seconds"])
# Compiled-circuit outcomes of a trained net (DESIGN §2.4); a column, or a key of extra_json until declared.
COMPILED_COLS = ["compiled_gates", "compiled_aig_nodes", "compiled_max_error", "compiled_eps",
                 "compiled_float_error", "compiled_k"]


# ----------------------------------------------------------------------------------------------------------------
# Tables in, one type inside
# ----------------------------------------------------------------------------------------------------------------

def as_table(records) -> pa.Table:
    """A pyarrow Table of the records, from a Table, a DataFrame, a list of dicts, or None (empty)."""
    if records is None:
        return pa.table({"task_key": pa.array([], pa.string()), "kind": pa.array([], pa.string()),
                         "status": pa.array([], pa.string())})
    if isinstance(records, pa.Table):
        return records
    if isinstance(records, pd.DataFrame):
        df = records.reset_index(drop=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")      # pandas' deprecation chatter about tz-aware columns
                return pa.Table.from_pandas(df, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            # Mixed Python objects in a column (e.g. dicts and strings): keep them, as JSON text.
            fixed = df.copy()
            for c in fixed.columns:
                if fixed[c].dtype == object:
                    fixed[c] = [v if v is None or isinstance(v, str) else json.dumps(v, default=str)
                                for v in fixed[c]]
            return pa.Table.from_pandas(fixed, preserve_index=False)
    if isinstance(records, (list, tuple)):
        return as_table(pd.DataFrame(list(records)))
    raise TypeError(f"records must be a pyarrow Table, a pandas DataFrame or a list of dicts, "
                    f"got {type(records).__name__}")


def column(t: pa.Table, name: str, typ: pa.DataType | None = None) -> pa.ChunkedArray:
    """t[name], or all nulls when the column is absent; cast to typ when given and possible."""
    if name in t.column_names:
        col = t.column(name)
        if typ is not None and col.type != typ:
            try:
                col = col.cast(typ)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                col = pa.chunked_array([pa.nulls(len(t), typ)])
        return col
    return pa.chunked_array([pa.nulls(len(t), typ or pa.null())])


def kind_mask(t: pa.Table, kind: str) -> np.ndarray:
    if len(t) == 0 or "kind" not in t.column_names:
        return np.zeros(len(t), dtype=bool)
    return pc.fill_null(pc.equal(column(t, "kind", pa.string()), kind), False).to_numpy(zero_copy_only=False)


def ok_mask(t: pa.Table) -> np.ndarray:
    """status == ok; a table without a status column is taken as all ok (hand-made tables)."""
    if "status" not in t.column_names:
        return np.ones(len(t), dtype=bool)
    return pc.fill_null(pc.equal(column(t, "status", pa.string()), "ok"), False).to_numpy(zero_copy_only=False)


def select(t: pa.Table, mask: np.ndarray, columns: Iterable[str], prefixes: Iterable[str] = ()) -> pa.Table:
    """The rows of mask and the columns named (those present) or starting with a prefix: selected before
    filtering, so that large columns nobody reads are never copied."""
    want = [c for c in dict.fromkeys(columns) if c in t.column_names]
    want += [c for c in t.column_names if c not in want and any(c.startswith(p) for p in prefixes)]
    sub = t.select(want)
    return sub.filter(pa.array(mask)) if len(t) else sub


def bool_column(df: pd.DataFrame, col: str) -> np.ndarray:
    """A boolean column as a numpy array; absent or null (records from before the column existed): False."""
    if col not in df:
        return np.zeros(len(df), dtype=bool)
    return pd.array(df[col].to_numpy(object), dtype="boolean").fillna(False).to_numpy(bool)


def frame(t: pa.Table, columns: Iterable[str], *, pattern: str | None = None) -> pd.DataFrame:
    """Selected columns (absent ones as null) and those matching `pattern` (a prefix), as a DataFrame."""
    cols = list(dict.fromkeys(columns))
    if pattern:
        cols += [c for c in t.column_names if c.startswith(pattern) and c not in cols]
    arrays = [column(t, c) for c in cols]
    return pa.Table.from_arrays(arrays, names=cols).to_pandas()


# ----------------------------------------------------------------------------------------------------------------
# Function identity
# ----------------------------------------------------------------------------------------------------------------

# function_params of canonical JSON: a flat object (most targets; one fast RE2 pass over every row), else an object
# nested to depth 3 (mixtures: a second, slower pattern over those rows only).
_FLAT_FP_RE = r'"function_params":(?P<fp>\{[^{}]*\})'
_NESTED_FP_RE = r'"function_params":(?P<fp>\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\})'
_FN_RE = r'"function":"(?P<fn>[^"\\]*)"'
_VERSION_RE = r'"function_version":"(?P<v>[^"\\]*)"'
_NO_FP = "\x00"
_VERSION_SEP = "\x01"  # between name and version inside the raw key (a mixture's version holds '@' and '+')
CIRCUIT_KINDS = ("circuit_ladder", "circuit_search")
CATALOGUE_COLUMNS = ["function", "function_version", "function_params", "domain", "function_key", "label"]


def _key(name: str, version: str, params: str, domain: str) -> str:
    return f"{name}@{version}|{params}|{domain}" if version else f"{name}|{params}|{domain}"


def split_key(key: str) -> tuple[str, str, str]:
    name, rest = key.split("|", 1)
    params, domain = rest.rsplit("|", 1)
    return name, params, domain


def function_ids(t: pa.Table) -> tuple[np.ndarray, pd.DataFrame]:
    """(fid, catalogue): per row an integer id (-1 when the row names no function) into the catalogue of distinct
    target functions, a DataFrame with columns function, function_params (canonical JSON), domain, function_key
    and label. Vectorised: one RE2 pass over params_json, then Python work per distinct target only.

    Nets (resnet_train) have no domain parameter; they are on the box, the default domain (DESIGN §2.1)."""
    n = len(t)
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in CATALOGUE_COLUMNS})
    if n == 0:
        return np.zeros(0, dtype=np.int64), empty
    pj = column(t, "params_json", pa.string()).combine_chunks() if "params_json" in t.column_names \
        else pa.nulls(n, pa.string())
    dom = _domains(t, pj)
    enc = _raw_keys(t, pj, dom).dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    uniq = enc.dictionary.to_pylist()

    cat: dict[str, int] = {}
    rows: list[tuple[str, str, str, str]] = []
    raw_to_fid, todo = _intern_raw_keys(uniq, cat, rows)
    fid = raw_to_fid[codes]
    if todo:
        _intern_parsed(fid, np.flatnonzero(np.isin(codes, todo)), codes, uniq, pj, dom, cat, rows)
    catalogue = pd.DataFrame(rows, columns=["function", "function_version", "function_params", "domain"])
    catalogue["function_key"] = [_key(*r) for r in rows]
    catalogue["label"] = _labels(rows)
    return fid, catalogue


def _domains(t: pa.Table, pj: pa.Array) -> pa.Array:
    """The domain per row: a parameter of circuit kinds only, read from params_json where it can be; else box."""
    n = len(t)
    kind = column(t, "kind", pa.string()).combine_chunks()
    circ = pc.fill_null(pc.is_in(kind, pa.array(CIRCUIT_KINDS)), False)
    dom = pa.repeat(pa.scalar("box", pa.string()), n)
    if pc.any(circ).as_py():
        idx = pa.array(np.flatnonzero(circ.to_numpy(zero_copy_only=False)))
        d = pc.struct_field(pc.extract_regex(pj.take(idx), r'"domain":"(?P<d>[^"\\]*)"'), [0])
        dom = pc.replace_with_mask(dom, circ, pc.fill_null(d, "box"))
    return dom


def _raw_keys(t: pa.Table, pj: pa.Array, dom: pa.Array) -> pa.Array:
    """Per row the raw key name _VERSION_SEP version | function_params as written | domain, read by the RE2
    patterns (_NO_FP for a name or parameters they cannot read)."""
    n = len(t)
    fn = column(t, "function", pa.string()).combine_chunks()
    fp = pc.struct_field(pc.extract_regex(pj, _FLAT_FP_RE), [0]) if pj.null_count < n else pa.nulls(n, pa.string())
    fp = _refill(fp, pj, _NESTED_FP_RE)
    fn = _refill(fn, pj, _FN_RE)      # failed records have no function column value: read it from params_json
    fv = _refill(column(t, "function_version", pa.string()).combine_chunks(), pj, _VERSION_RE)
    fn = pc.binary_join_element_wise(pc.fill_null(fn, _NO_FP), pc.fill_null(fv, ""), _VERSION_SEP)
    fp = pc.fill_null(fp, _NO_FP)
    return pc.binary_join_element_wise(fn, fp, dom, "|")


def _intern_raw_keys(uniq: list[str], cat: dict, rows: list) -> tuple[np.ndarray, list[int]]:
    """Catalogue ids of the distinct raw keys (their parameters canonicalised), and the indices of those the
    regexes could not read, left at -1 for _intern_parsed."""
    raw_to_fid = np.full(len(uniq), -1, dtype=np.int64)
    todo: list[int] = []
    for i, r in enumerate(uniq):
        name, params, domain = split_key(r)
        name, version = name.split(_VERSION_SEP, 1)
        if params == _NO_FP or name == _NO_FP:
            todo.append(i)
            continue
        try:
            params = records.canonical_json(json.loads(params))
        except ValueError:
            todo.append(i)
            continue
        raw_to_fid[i] = _intern(cat, rows, name, version, params, domain)
    return raw_to_fid, todo


def _intern_parsed(fid: np.ndarray, rows_todo: np.ndarray, codes: np.ndarray, uniq: list[str], pj: pa.Array,
                   dom: pa.Array, cat: dict, rows: list) -> None:
    """fid of the rows the regexes could not read (no params_json, deeper nesting, hand-made tables): each row's
    params_json parsed fully. Fills fid in place; rows that name no function stay -1."""
    texts = pj.take(pa.array(rows_todo)).to_pylist()
    doms = dom.take(pa.array(rows_todo)).to_pylist()
    for i, text, d in zip(rows_todo, texts, doms):
        try:
            params = json.loads(text) if text else {}
        except (TypeError, ValueError):
            params = {}
        if not isinstance(params, dict):
            params = {}
        raw_name, raw_version = split_key(uniq[codes[i]])[0].split(_VERSION_SEP, 1)
        name = params.get("function") or raw_name
        if name == _NO_FP:
            continue
        version = raw_version or str(params.get("function_version") or "")
        fid[i] = _intern(cat, rows, name, version, records.canonical_json(params.get("function_params") or {}),
                         params.get("domain") or d)


def per_row(values: list, fid: np.ndarray, missing: str) -> pd.Categorical:
    """values[fid] for every row as a Categorical (cheap for a million rows), `missing` where fid < 0."""
    cats, inv = np.unique(np.asarray([str(v) for v in values] + [missing], dtype=object), return_inverse=True)
    codes = inv[np.where(fid >= 0, fid, len(values))]
    return pd.Categorical.from_codes(codes, categories=pd.Index(cats, dtype=object))


def _labels(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """label() per target, with its version appended where one target appears in several versions."""
    versions: dict[tuple, set] = {}
    for name, version, params, domain in rows:
        versions.setdefault((name, params, domain), set()).add(version)
    return [label(name, params) + (f" v{version}" if len(versions[(name, params, domain)]) > 1 else "")
            for name, version, params, domain in rows]


def _refill(values: pa.Array, pj: pa.Array, pattern: str) -> pa.Array:
    """values, with its nulls (where params_json exists) replaced by the pattern's first group in params_json."""
    mask = pc.and_(pc.is_null(values), pc.is_valid(pj))
    if not pc.any(mask).as_py():
        return values
    idx = pa.array(np.flatnonzero(mask.to_numpy(zero_copy_only=False)))
    found = pc.struct_field(pc.extract_regex(pj.take(idx), pattern), [0])
    return pc.replace_with_mask(values, mask, found.cast(values.type))


def _intern(cat: dict, rows: list, name: str, version: str, params: str, domain: str) -> int:
    key = _key(name, version, params, domain)
    if key not in cat:
        cat[key] = len(rows)
        rows.append((name, version, params, domain))
    return cat[key]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    return str(v)


def label(function: str, params_json: str, max_len: int = 60) -> str:
    """A short human name: 'holder_random(d=1, s=0.5, seed=0)', 'mixture of 4 × holder_random(d=1, s=0.4)'."""
    try:
        params = json.loads(params_json) if params_json else {}
    except ValueError:
        params = {}
    if function == "mixture" and isinstance(params.get("parts"), list):
        parts = params["parts"]
        names = {p.get("name") for p in parts if isinstance(p, dict)}
        if len(names) == 1:
            common = {k: v for k, v in parts[0].items() if k not in ("name", "seed")
                      and all(p.get(k) == v for p in parts)}
            inner = ", ".join(f"{k}={_fmt(v)}" for k, v in common.items() if k != "levels")
            text = f"mixture of {len(parts)} × {names.pop()}({inner})"
        else:
            text = f"mixture of {len(parts)} parts"
    else:
        shown = {k: v for k, v in params.items() if k != "levels"}
        text = f"{function}({', '.join(f'{k}={_fmt(v)}' for k, v in shown.items())})" if shown else str(function)
    return text if len(text) <= max_len else text[:max_len - 1] + "…"


def extra_values(t: pa.Table, names: Iterable[str]) -> pd.DataFrame:
    """Values of `names` per row: the column when it exists, else the key of extra_json (cluster.schema keeps
    values it does not declare there). Only rows with an extra_json are parsed."""
    names = list(names)
    out = pd.DataFrame({n: column(t, n, pa.float64()).to_numpy(zero_copy_only=False) for n in names})
    missing = [n for n in names if n not in t.column_names or t.column(n).null_count == len(t)]
    if not missing or "extra_json" not in t.column_names or len(t) == 0:
        return out
    ej = column(t, "extra_json", pa.string())
    has = np.flatnonzero(pc.fill_null(pc.match_substring_regex(ej, "compiled_|" + "|".join(missing)),
                                      False).to_numpy(zero_copy_only=False))
    if len(has) == 0:
        return out
    parsed = []
    for s in ej.take(pa.array(has)).to_pylist():
        try:
            d = json.loads(s)
        except (TypeError, ValueError):
            d = None
        parsed.append(d if isinstance(d, dict) else {})
    for n in missing:
        col = out[n].to_numpy(dtype=float, copy=True)
        for i, d in zip(has, parsed):
            v = d.get(n)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                col[i] = float(v)
        out[n] = col
    return out
