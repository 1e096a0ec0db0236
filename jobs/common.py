"""What several commands of jobs/ share: printing a result, --param, loading a sweep spec, and stopping on
SIGTERM as on Ctrl-C. (--plugin files are loaded by jobs/cli.py's load_plugins, the one place that loads code by
path, before any command runs.)"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys


def emit(payload: dict, as_json: bool) -> None:
    """One JSON object (a stable contract), or aligned `key  value` lines."""
    if as_json:
        print(json.dumps(payload, sort_keys=True))
    else:
        width = max(len(k) for k in payload)
        for k, v in payload.items():
            print(f"{k:<{width}}  {v}")


def parse_params(items: list[str] | None) -> dict:
    """--param key=value pairs; values are parsed as YAML scalars or lists (2, 0.5, [1, 2], text)."""
    import yaml
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param '{item}' must look like key=value, e.g. --param s=0.5")
        try:
            out[key.strip()] = yaml.safe_load(value)   # safe: tags such as !!python/object are refused
        except yaml.YAMLError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"--param '{item}': the value is not a YAML scalar or list ({first})") from None
    return out


def target_from_args(args):
    """The target function named by `function` and `--param`."""
    from htmc.targets import make_function
    return make_function(args.function, **parse_params(args.param))


def spec_from_args(args, **overrides):
    """The sweep spec of `spec` (or of `--spec-from-env VAR`), with --results and --tracking-uri applied."""
    from cluster.spec.parse import load_spec, parse_spec
    overrides = {"results": getattr(args, "results", None), "tracking_uri": getattr(args, "tracking_uri", None),
                 **overrides}
    env_var = getattr(args, "spec_from_env", None)
    if env_var:
        text = os.environ.get(env_var)
        if not text:
            raise ValueError(f"--spec-from-env {env_var}: the environment variable is not set")
        return parse_spec(text, f"${env_var}", **overrides)
    if not args.spec:
        raise ValueError("give a sweep spec file (e.g. sweeps/demo.yaml)")
    return load_spec(args.spec, **overrides)


def sigterm_as_interrupt() -> None:
    """`ray job stop` and schedulers send SIGTERM: stop as cleanly as on Ctrl-C."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


PLUGIN_HELP = ("a Python file that registers extra task kinds (e.g. tests/noop_kind.py; their code travels to the "
               "workers with the sweep) or target functions and norms (known to this process only); repeatable. A "
               "submitted Ray job loads it from its working dir")


# --- the CLI dialect (issue 23): one spelling, metavar and help per shared flag, in every command --------------------
JSON_HELP = "print the result as one JSON object on stdout"
RESULTS_HELP = "override the spec's results.uri: a local path or s3://bucket/prefix"
TRACKING_HELP = "override the spec's tracking.uri (MLflow), e.g. sqlite:///mlflow.db or http://HOST:5000"
RAY_ADDRESS_HELP = ("the Ray cluster to join, e.g. 10.0.0.1:6379 or ray://HEAD:10001 (default $RAY_ADDRESS; without "
                    "one, a private local Ray starts on 127.0.0.1)")
JOB_SERVER_HELP = ("the Ray job server (the dashboard's address) to submit to, e.g. http://127.0.0.1:8265 "
                   "(default $RAY_API_SERVER_ADDRESS)")


def add_json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def add_results_arg(p: argparse.ArgumentParser, help: str = RESULTS_HELP) -> None:
    p.add_argument("--results", metavar="URI", help=help)


def add_tracking_arg(p: argparse.ArgumentParser, help: str = TRACKING_HELP) -> None:
    p.add_argument("--tracking-uri", metavar="URI", help=help)


def add_plugin_arg(p: argparse.ArgumentParser, help: str = PLUGIN_HELP) -> None:
    p.add_argument("--plugin", action="append", metavar="FILE.py", help=help)


def add_function_args(p: argparse.ArgumentParser, plugin_help: str = PLUGIN_HELP) -> None:
    """FUNCTION, --param KEY=VALUE and --plugin: how every command names a target (target_from_args reads them)."""
    p.add_argument("function", metavar="FUNCTION", help="a registered target function (see `htmc functions list`)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="function parameter, repeatable")
    add_plugin_arg(p, help=plugin_help)


class DeprecatedFlag(argparse.Action):
    """A renamed flag's old spelling (issue 23: `--address` meant a Ray cluster in `sweep run` and a job server in
    `sweep submit`). Hidden from --help; it still works, and says once on stderr which flag replaces it."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"htmc: note: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_arg(p: argparse.ArgumentParser, old: str, new: str, dest: str) -> None:
    p.add_argument(old, dest=dest, action=DeprecatedFlag, new=new, metavar="ADDRESS", help=argparse.SUPPRESS)
