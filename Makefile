# Two entry points on a fresh machine: `make demo` and `make test`.
# Servers (Keycloak, kube-apiserver, etcd, kubectl, helm, promtool) are fetched or built once
# and cached under ~/.cache/keycloak-monitor/.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all venv provision test test-e2e lint demo bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

provision: venv
	$(PY) -m tests.testbed.keycloak fetch
	$(PY) -m tests.testbed.keycloak fetch --compat
	$(PY) -m tests.testbed.keycloak_events fetch
	$(PY) -m tests.testbed.kube fetch
	$(PY) -m tests.testbed.tools fetch

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: provision lint
	$(VENV)/bin/pytest -ra --durations=15

# The operator end-to-end tests only, e.g. against a kind cluster named by KUBECONFIG.
test-e2e: provision
	$(VENV)/bin/pytest -ra -m kube

# Benchmarks: scrape, collection on a real Keycloak and at 50k sessions on a synthetic one,
# the operator at 500 monitors with 1,000 create/delete cycles, the cost of one more monitor of
# a Keycloak (shared pools and tokens) (a table, bench/results/*.json,
# bench/RESULTS.md).
bench: provision
	$(PY) -m bench

demo: provision
	$(PY) -m tests.testbed.demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
