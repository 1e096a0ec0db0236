# Two commands on a fresh machine: `make test` and `make demo` (README). Both reuse .venv when it exists,
# because pip keeps no download cache here and a fresh venv downloads ~2 GB.
PY      := .venv/bin/python
STAMP   := .venv/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: test demo install abc bench clean

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
	$(PY) -c "from htmc.abc import abc_binary; print('ABC:', abc_binary())"

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) -m jobs.demo

bench: install
	$(PY) benchmarks/simulate.py

clean:
	rm -rf results mlflow.db mlartifacts .pytest_cache
