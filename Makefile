# Two-command quickstart: `make demo` and `make test` (each sets up .venv when missing).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.texfarm-installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/texfarm run manifests/quickstart.yaml

# Two pytest workers: most tests wait on Ray, S3 or subprocesses rather than compute, so two share 2 cores
# well (73 -> 36 minutes on a 2-core box). Each worker starts its own local Ray cluster and S3 endpoint.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

bench: $(STAMP)
	$(BIN)/python -m bench --sizes 64 --iterations 5

clean:
	rm -rf $(VENV) out
