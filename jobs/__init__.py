"""Thin entry points (DESIGN §3): argparse wiring that calls cluster/ and htmc/; no science here.

  cli.py         the `htmc` command (circuit and functions commands, load_plugins: the one place code is loaded)
  *_cli.py       the wiring of `htmc sweep|nightly|analyze|resnet` (sweep_cli, nightly_cli, analyze_cli, resnet_cli)
  sweep.py, nightly.py, analyze.py   `python -m jobs.X`, the entry points of Ray jobs; demo.py: `make demo`
  common.py      what several commands share (printing, --param, loading a spec, SIGTERM); errors.py: exit 2
"""
