# Two commands on a fresh machine: `make test` and `make demo` (README). Both reuse .venv when it exists,
# because pip keeps no download cache here and a fresh venv downloads ~2 GB.
PY      := .venv/bin/python
STAMP   := .venv/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: test demo install abc bench clean ui

$(PY):
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	rm -f .venv/.installed-*
	touch $(STAMP)

install: $(STAMP) abc

# ABC ships inside the pyosys wheel; this checks that the binary runs (and says how to fix it when it does not).
abc: $(STAMP)
	$(PY) -c "from htmc.synthesis.abc_tool import abc_binary; print('ABC:', abc_binary())"
	$(PY) -c "from htmc.circuits import fastsim; fastsim.warm()"   # compile the verifier's kernels once (~25 s)

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) -m jobs.demo

# The MLflow UI of the local runs, on this machine only (docs/SECURITY.md: MLflow has no authentication, so the
# host is explicit: an MLFLOW_HOST in the environment that names all interfaces must not expose it).
ui: $(STAMP)
	@$(PY) -m jobs.mlflow_link sweeps/demo.yaml
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db \
		--host 127.0.0.1 --port 5000 --workers 1

bench: install
	$(PY) benchmarks/simulate.py

clean:
	rm -rf results mlflow.db mlartifacts .pytest_cache
