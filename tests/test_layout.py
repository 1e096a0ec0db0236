"""The layout's promises (issue 13, docs/ARCHITECTURE.md): the science packages load no torch, ray or mlflow; htmc/
and analysis/ never import ray, mlflow or boto3; no module over 500 lines and no function over 60."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "mlflow", "boto3")
PACKAGES = ["htmc", "cluster", "analysis", "jobs"]


@pytest.mark.parametrize("package", ["htmc.circuits", "htmc.targets", "htmc.synthesis", "htmc.rates",
                                     "htmc.records", "htmc.tasks"])
def test_science_packages_load_no_heavy_module(package):
    code = (f"import sys, json, importlib; importlib.import_module({package!r}); "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert json.loads(out) == [], f"importing {package} loaded {out.strip()}"


def _modules(*roots):
    return [p for r in roots for p in sorted((REPO / r).rglob("*.py"))]


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_htmc_and_analysis_never_import_ray_mlflow_or_boto3():
    bad = {str(p.relative_to(REPO)): sorted(_imported(p) & {"ray", "mlflow", "boto3", "botocore"})
           for p in _modules("htmc", "analysis")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_no_module_over_500_lines_and_no_function_over_60():
    long_modules, long_functions = [], []
    for p in _modules(*PACKAGES):
        text = p.read_text()
        if text.count("\n") > 500:
            long_modules.append(f"{p.relative_to(REPO)} ({text.count(chr(10))})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{p.relative_to(REPO)}:{node.lineno} {node.name}")
    assert long_modules == [] and long_functions == []
