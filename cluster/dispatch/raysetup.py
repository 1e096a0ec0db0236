"""Starting or joining Ray with this project's security defaults (DESIGN §5).

- No address (no argument, no $RAY_ADDRESS): start a private in-process Ray on 127.0.0.1 with the machine's CPUs,
  no dashboard (unless asked for: then on 127.0.0.1), `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` and an explicit `RAY_AUTH_MODE` (token unless the user set
  it). `address="local"` is passed so that Ray never attaches to some other cluster found in /tmp/ray.
- An address (e.g. inside `ray job submit`, which sets $RAY_ADDRESS): join that cluster as it is configured.
"""
from __future__ import annotations

import logging
import os


def _set_local_env() -> None:
    # Read by Ray at import time (ray_constants), so set before `import ray` where possible.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def probe_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not minutes, on a host:port where nothing listens (ray.init retries a dead GCS for long)."""
    import re
    import socket
    m = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address.strip())
    if not m:
        return   # "auto", "local" and the like: Ray resolves them itself
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout_s).close()
    except OSError as e:
        raise ConnectionError(f"nothing answers at Ray address '{address}' ({e}); check --ray-address / $RAY_ADDRESS, "
                              f"or leave both unset to start a private local Ray") from None


def init_ray(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
             dashboard: bool = False) -> bool:
    """Connect or start Ray. Returns True when this process started a private local Ray (it cannot autoscale)."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address:
        _set_local_env()
    import ray
    if ray.is_initialized():
        return False
    if address:
        probe_address(address)
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        return False
    ray.init(address="local", num_cpus=int(num_cpus) if num_cpus else os.cpu_count(),
             num_gpus=num_gpus, include_dashboard=dashboard, dashboard_host="127.0.0.1",
             _node_ip_address="127.0.0.1", logging_level=logging.WARNING, log_to_driver=False)
    return True
