"""Writes tests/data/keys_v1.json.gz: task keys computed by the planning code of commit 800e957 (before issue 22's
faster planning), for tests/test_key_stability.py. Run it only from a checkout of that commit (the fixture is
the old code's answer; regenerating it with new code would test nothing):

    git worktree add /tmp/keys-old 800e957 && cd /tmp/keys-old && \
        /work/main/.venv/bin/python /work/main/tests/data/make_keys_v1.py /work/main/tests/data/keys_v1.json.gz

The fixture holds, per spec: its YAML text, the key of every task in expansion order, and the sha256 of the
newline-joined canonical params JSON (what records store as params_json), so both keys and params must agree.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))
sys.path.insert(0, str(Path.cwd() / "tests"))
import noop_kind  # noqa: E402,F401  registers `noop`
from cluster.spec.parse import parse_spec  # noqa: E402

SPECS = {
    "search": """
name: keys-search
groups:
  - kind: circuit_search
    name: plain
    params: {methods: [abc], thorough: false}
    grid:
      function: [sin, exp, sqrt, absdiff, product, sigmoid]
      eps: [0.5, 0.25, 0.125, 0.1, 0.05, 1.0, 2, 0.3333333333333333, 1.0e-3]
      budget_s: [10, 10.0, 30.5]
  - kind: circuit_search
    name: params
    params: {thorough: false}
    grid:
      function: [sin]
      function_params: {freq: [1, 2.0, 3.5, 4]}
      eps: [0.2, 0.1]
      methods: [[abc], [table], [abc, table], [arith, abc]]
      bits: [null, 4, 6]
  - kind: circuit_search
    name: grid_domain
    params: {domain: grid, methods: [table]}
    grid:
      function: parity
      function_params: {d: [1, 2, 3], bits: [1, 2]}
      eps: [0, 0.25]
  - kind: circuit_search
    name: mixtures
    params: {eps: 0.1}
    grid:
      function: mixture
      function_params:
        parts: [[{name: sin, freq: 1}, {name: exp}], [{name: sqrt}, {name: sin, freq: 2}, {name: exp}]]
        weights: [null]
""",
    "ladder": """
name: keys-ladder
groups:
  - kind: circuit_ladder
    name: rates
    params: {steps: 5, thorough: false}
    grid:
      function: [sin, exp, sqrt, sigmoid]
      eps0: [0.2, 0.1, 0.5, 1, 0.05]
      methods: [[abc], [arith, abc], [table, abc]]
      max_inputs: [null, 12]
      gammas: [[2, 3, 4], [1.5, 2.5]]
  - kind: circuit_ladder
    name: holder
    params: {eps0: 0.8, steps: 5, methods: [abc, lupanov]}
    grid:
      function: holder_random
      function_params: {d: [1, 2], s: [0.5, 0.75, 1.0], seed: [0, 1, 2], levels: [null, 8]}
  - kind: circuit_ladder
    name: walsh
    params: {function: walsh_mixture, eps0: 0.5, steps: 6, methods: [mc, table]}
    grid:
      function_params: {m: [1, 4, 16, 64], n: [8], seed: [0, 1, 2, 3]}
  - kind: circuit_ladder
    name: compositional
    params: {eps0: 0.25, steps: 3, function: compositional}
    grid:
      function_params: [{d: 4, inner_d: 2, s: [0.5, 1.0]}, {d: 2, inner_d: 1}]
  - kind: circuit_ladder
    name: ridges
    params: {eps0: 0.25, steps: 3, function: relu_ridges}
    grid:
      function_params: {m: [8, 64], d: 2, seed: [0, 1]}
  - kind: circuit_ladder
    name: teacher
    params: {eps0: 0.25, steps: 3, function: resnet_teacher}
    grid:
      function_params: {width: [4, 8], depth: 2, rank: 2, density: [0.5, 1]}
""",
    "resnet": """
name: keys-resnet
groups:
  - kind: resnet_train
    name: nets
    params: {steps: 1000, depth: 2, rank: 8, n_train: 512, lr: 0.01, reg: block_path}
    grid:
      function: [sin, exp, sqrt]
      width: [8, 16, 32]
      lam: [1.0e-6, 5.2e-6, 2.7e-5, 1.4e-4, 7.2e-4, 3.7e-3, 1.9e-2, 1.0e-1, 1.0]
      seed: [0, 1, 2, 3]
  - kind: resnet_train
    name: nets_holder
    params: {function: holder_random, device: cpu}
    grid:
      function_params: {d: [1, 2], s: [0.75, 1.0]}
      reg: [l1, block_path]
      lr: [0.01, 1.0e-3]
  - kind: resnet_compile
    name: compiled
    for_each: nets
    params: {eps0: 0.2, steps: 4, budget_s: 5}
  - kind: resnet_compile
    name: compiled_holder
    for_each: nets_holder
    grid: {eps0: [0.8, 1.0], steps: [5], max_inputs: [12, 16]}
""",
    "noop": """
name: keys-noop
groups:
  - kind: noop
    name: xs
    grid:
      x: [0, 1, 1.0, 2.5, -3, 1.0e-9, 1.0e+20, 123456789012, 0.1]
      sleep_s: [0, 0.5]
      fail: [false, true]
  - kind: noop
    name: touches
    grid:
      x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
      touch: [null, /tmp/a, "/tmp/ü b"]
      fail_if_missing: [null, /tmp/c]
""",
}


_EPS = [0.5 ** (i / 4) for i in range(1, 41)]          # irregular floats: their repr must key the same
_SEEDS = list(range(60))
SPECS["search-many"] = f"""
name: keys-search-many
groups:
  - kind: circuit_search
    params: {{thorough: false}}
    grid:
      function: [sin, exp, sqrt, sigmoid, absdiff]
      eps: {_EPS}
      methods: [[abc], [table, abc], [arith]]
      domain: [box, grid]
"""
SPECS["ladder-many"] = f"""
name: keys-ladder-many
groups:
  - kind: circuit_ladder
    params: {{steps: 4, methods: [abc]}}
    grid:
      function: [sin, exp]
      eps0: {_EPS}
      function_params: [{{}}]
      budget_s: [5, 60]
  - kind: circuit_ladder
    params: {{steps: 4, methods: [mc, table], function: walsh_mixture}}
    grid:
      eps0: {_EPS[:10]}
      function_params: {{m: [2, 8], seed: {_SEEDS}}}
"""
SPECS["train-many"] = f"""
name: keys-train-many
groups:
  - kind: resnet_train
    params: {{steps: 200}}
    grid:
      function: [sin, exp]
      lam: {_EPS[:12]}
      seed: {_SEEDS[:40]}
"""
SPECS["noop-many"] = f"""
name: keys-noop-many
groups:
  - kind: noop
    grid:
      x: {[i * 0.37 for i in range(1000)]}
      sleep_s: [0, 0.001]
"""


def entry(name: str, text: str) -> dict:
    spec = parse_spec(text, f"<{name}>")
    tasks = spec.plan.tasks
    joined = "\n".join(t.params_json for t in tasks).encode()
    return {"name": name, "text": text, "n": len(tasks), "keys": [t.key for t in tasks],
            "groups": [t.group for t in tasks], "params_sha256": hashlib.sha256(joined).hexdigest()}


def main(out: str) -> None:
    specs = dict(SPECS)
    for path in sorted(Path("sweeps").glob("*.yaml")):   # the shipped sweeps too, as they were then
        specs[f"sweeps/{path.name}"] = path.read_text()
    base = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    data = {"base_commit": base, "specs": [entry(n, t) for n, t in specs.items()]}
    with gzip.open(out, "wt", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
    for e in data["specs"]:
        print(f"{e['name']}: {e['n']} tasks")


if __name__ == "__main__":
    main(sys.argv[1])
