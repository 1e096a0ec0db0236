"""What produced a record: git sha and package versions (DESIGN §4 common columns). No Ray, no MLflow here."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"htmc_version": "htmc-sweep", "numpy_version": "numpy", "torch_version": "torch",
            "pyarrow_version": "pyarrow", "ray_version": "ray"}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """Versions of the packages a record depends on, without importing them (torch takes seconds to import)."""
    out = {"python_version": platform.python_version()}
    out.update({col: _version(dist) for col, dist in PACKAGES.items()})
    return out


@functools.lru_cache(maxsize=1)
def git_sha() -> str | None:
    """$HTMC_GIT_SHA (set by `htmc sweep submit`, whose working dir copy has no .git), else `git rev-parse HEAD`
    of this checkout with a `-dirty` suffix when tracked files have changes; None outside a git checkout."""
    env = os.environ.get("HTMC_GIT_SHA")
    if env:
        return env
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
