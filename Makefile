# consulha: `make demo` and `make test` work on a fresh Debian machine (as root: they install
# Consul 1.8.7 and BIND 9 from Debian's archive first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: deps demo test test-fast bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

deps: $(STAMP)
	@scripts/install-deps

demo: deps
	$(PY) -m lab.demo

test: deps
	$(PY) -m pytest -q

test-fast: deps   # no Consul, no BIND, no root: the rule table and the other pure tests
	$(PY) -m pytest -q -m "not integration and not chaos"

bench: deps
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/failover.py --runs 20 --scenarios check,check-fbc3,sigkill,stop,handover
	$(PY) bench/consul_lock.py --runs 3
	$(PY) bench/sites.py --runs 20 --lock-runs 3
	$(PY) bench/scale.py --groups 1,10,25,40
	$(PY) bench/report.py

chaos: deps
	$(PY) -m pytest -q -m chaos tests/chaos

clean:
	rm -rf $(VENV) build *.egg-info
