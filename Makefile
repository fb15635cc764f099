# consulha: `make demo` and `make test` work on a fresh Debian machine (as root: they install
# Consul 1.8.7, BIND 9 and PowerDNS from Debian's archive first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: deps demo test test-fast bench chaos deploy-test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

$(VENV)/.deploy-installed: $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[deploy]'
	touch $@

deps: $(STAMP)
	@scripts/install-deps

demo: deps
	$(PY) -m lab.demo

test: deps
	$(PY) -m pytest -q

test-fast: deps   # no Consul, no BIND, no root: the layer contracts, the rule table, the other pure tests
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -m "not integration and not chaos"

bench: deps
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/failover.py --runs 20 --scenarios check,check-fbc3,sigkill,sigstop,stop,handover
	$(PY) bench/consul_lock.py --runs 3
	$(PY) bench/sites.py --runs 20 --lock-runs 3
	$(PY) bench/dns_failover.py --runs 10
	$(PY) bench/idle.py
	$(PY) bench/consul_requests.py
	$(PY) bench/scale.py --groups 1,10,25,40
	$(PY) bench/flapping.py --runs 3
	$(PY) bench/damping_models.py
	$(PY) bench/report.py

chaos: deps
	$(PY) -m pytest -q -m chaos tests/chaos

# The whole topology deployed with ansible/site.yml onto seven systemd-nspawn hosts, then the
# proof steps of issue 7 (root; ~10 min cold). Figures in bench/results/deploy.json.
deploy-test: $(VENV)/.deploy-installed
	@scripts/install-deploy-deps
	cd ansible && PATH="$(abspath $(VENV))/bin:$$PATH" ansible-lint -q --profile production
	$(PY) -m deploylab

clean:
	rm -rf $(VENV) build *.egg-info
