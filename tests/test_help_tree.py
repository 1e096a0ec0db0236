"""Issue 23: one CLI dialect. Walks the whole help tree of `htmc` and of the `python -m jobs.X` entry points (whatever
is registered when it runs): every command and flag has help, shared flags have one spelling and metavar, every
`--json` command says what it prints and, for the cheap ones, its output parses. `htmc --version` works."""
from __future__ import annotations

import argparse
import json
import re

import pytest

from jobs.common import JSON_HELP

METAVARS = {"--results": "URI", "--tracking-uri": "URI", "--plugin": "FILE.py", "--ray-address": "ADDRESS",
            "--job-server": "URL"}

SPEC = """\
name: helptree
results: {{uri: "{results}"}}
tracking: {{uri: "sqlite:///{db}"}}
groups:
  - kind: noop
    grid: {{x: [1, 2]}}
"""

# Every command with --json is run here on a tiny input (argv; {spec}, {results} and {noop} are filled in) ...
CHEAP = {
    ("circuit", "exact"): ["-t", "6", "-n", "2"],
    ("circuit", "synth"): ["-t", "e8", "-n", "3"],
    ("circuit", "search"): ["product", "--domain", "grid", "--bits", "2", "--eps", "0", "--methods", "table"],
    ("circuit", "ladder"): ["sin", "--eps0", "0.25", "--steps", "2", "--methods", "table", "--quick"],
    ("functions", "list"): [],
    ("resnet", "train"): ["sin", "--width", "2", "--depth", "1", "--rank", "1", "--lam", "0", "--steps", "2",
                          "--n-train", "8"],
    ("sweep", "status"): ["{spec}", "--plugin", "{noop}"],
    ("sweep", "plan"): ["{spec}", "--plugin", "{noop}"],
    ("store", "compact"): ["--results", "{results}"],
}
# ... or named here with the reason it is not (each runs for real in the test module named).
HEAVY = {
    ("sweep", "run"): "starts Ray (tests/test_cluster_sweep.py)",
    ("sweep", "submit"): "needs a Ray job server (tests/test_cluster_sweep.py)",
    ("sweep", "sync-mlflow"): "needs MLflow runs (tests/test_cluster_tracking.py)",
    ("nightly",): "starts Ray or needs a job server (tests/test_nightly.py)",
    ("analyze",): "draws every plot of a sweep (tests/test_analysis.py)",
    ("resnet", "fit"): "trains nets to a rung (tests/test_fit.py)",
}


def _parsers():
    from jobs import analyze, nightly, sweep
    from jobs.cli import build_parser
    return {"htmc": build_parser(), "python -m jobs.sweep": sweep.build_parser(),
            "python -m jobs.analyze": analyze.build_parser(), "python -m jobs.nightly": nightly.build_parser()}


def _walk(parser, path=()):
    """(command path, parser, its help line) for every command, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), sub, helps.get(name)
                yield from _walk(sub, path + (name,))


def _leaves():
    for prog, parser in _parsers().items():
        yield (prog,), parser
        for path, sub, _ in _walk(parser):
            if sub.get_default("func") is not None:
                yield path, sub


def _options(parser):
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def test_every_command_and_flag_has_help_and_the_shared_flags_one_spelling():
    for prog, parser in _parsers().items():
        assert parser.description, prog
        for path, sub, line in _walk(parser):
            assert line and line.strip(), f"{prog} {' '.join(path)}: no help line"
            assert sub.description or line, path
    n = 0
    for path, parser in _leaves():
        for a in _options(parser):
            where = f"{' '.join(path)} {'/'.join(a.option_strings) or a.dest}"
            if a.help == argparse.SUPPRESS:       # hidden: only the deprecated spellings of renamed flags
                assert a.option_strings == ["--address"], where
                continue
            n += 1
            assert a.help and a.help.strip(), f"{where}: no help"
            for flag in a.option_strings:
                if flag in METAVARS:
                    assert a.metavar == METAVARS[flag], where
            if not a.option_strings and a.dest in ("spec", "function"):
                assert a.metavar == a.dest.upper(), where
            if "--json" in a.option_strings:
                assert a.help == JSON_HELP, where
    assert n > 150          # the walk saw the whole tree (181 flags and positionals when this was written)


def test_every_json_command_documents_its_output_and_is_run_or_named():
    json_commands = set()
    for path, parser in _leaves():
        if any("--json" in a.option_strings for a in _options(parser)):
            assert "json" in (parser.description or "").lower(), f"{' '.join(path)}: its description does not " \
                                                                 f"say what --json prints"
            if not path[0].startswith("python -m"):   # the entry points run their htmc command's handler
                json_commands.add(path)
    missing = json_commands - set(CHEAP) - set(HEAVY)
    assert not missing, f"add these --json commands to CHEAP (a tiny run) or HEAVY (why not): {sorted(missing)}"
    assert set(CHEAP) <= json_commands


@pytest.mark.parametrize("path", sorted(CHEAP), ids=" ".join)
def test_json_output_parses(path, tmp_path, capsys):
    from jobs.cli import build_parser, main
    from conftest import NOOP_PLUGIN
    if path not in {p for p, _ in _leaves()}:
        pytest.skip(f"{' '.join(path)} is not registered in this checkout")
    results = tmp_path / "results"
    results.mkdir()
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(results=results, db=tmp_path / "mlflow.db"))
    fill = {"{spec}": str(spec), "{results}": str(results), "{noop}": NOOP_PLUGIN}
    argv = [*path, *[fill.get(a, a) for a in CHEAP[path]], "--json"]
    build_parser().parse_args(argv)
    rc = main(argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert isinstance(json.loads(out), dict)


def test_version_prints_the_package_version_and_git_sha(capsys):
    from jobs.cli import main
    from cluster.provenance import git_sha, versions
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"htmc \S+ \(git \S+.*\)", out)
    assert out.startswith(f"htmc {versions()['htmc_version']} ") and (git_sha() or "unknown") in out


def test_renamed_address_flags_still_parse_with_a_note(capsys):
    from jobs.cli import build_parser
    parser = build_parser()
    ns = parser.parse_args(["sweep", "run", "s.yaml", "--address", "10.0.0.1:6379"])
    assert ns.ray_address == "10.0.0.1:6379"
    assert capsys.readouterr().err.strip() == "htmc: note: --address is deprecated; use --ray-address"
    ns = parser.parse_args(["sweep", "submit", "s.yaml", "--address", "http://h:8265"])
    assert ns.job_server == "http://h:8265"
    assert "use --job-server" in capsys.readouterr().err
    ns = parser.parse_args(["sweep", "submit", "s.yaml", "--job-server", "http://h:8265"])
    assert ns.job_server == "http://h:8265" and capsys.readouterr().err == ""


def test_nightly_shows_its_spec_as_required(capsys):
    from jobs.cli import build_parser
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["nightly", "--here"])
    assert e.value.code == 2 and "SPEC" in capsys.readouterr().err


def test_resnet_choices_are_the_trainers():
    from htmc.resnets.training import DTYPES, REGS
    from jobs import resnet_cli
    assert tuple(resnet_cli.REGS) == tuple(REGS) and tuple(resnet_cli.DTYPES) == tuple(DTYPES)
