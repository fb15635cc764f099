# consulha. As root on a fresh Debian bookworm machine with make (README, "Quick start"), every
# target installs what it needs first: system packages by tier with scripts/install-deps (it says
# what it installs and fails naming what does not run), then a virtualenv in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: deps demo test test-fast wheel-test wheelhouse bench chaos deploy-test fresh-test clean \
	system-demo system-test system-nspawn

# The package and what it imports: enough for the demo.
$(RUNTIME): pyproject.toml
	@scripts/install-deps python
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# Plus the test tools.
$(STAMP): $(RUNTIME)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The chaos lab's WAN delayer: netfilterqueue builds from source against the test tier's
# libnetfilter-queue-dev, so only targets that install that tier first install it.
WAN := $(VENV)/.wan-installed
$(WAN): $(STAMP)
	$(PY) -m pip install -q -e '.[wan]'
	touch $@

$(VENV)/.deploy-installed: $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[deploy]'
	touch $@

# Listed before the virtualenv in each target's prerequisites: python3-venv and the rest come
# from one apt run.
system-demo:
	@scripts/install-deps python demo
system-test:
	@scripts/install-deps python demo test
system-nspawn:
	@scripts/install-deps python nspawn

deps: system-test $(STAMP) $(WAN)

demo: system-demo $(RUNTIME)
	$(PY) -m lab.demo

# The chaos scenarios are their own target since the suite passed 20 minutes: `make test` is the
# pure and integration tests, `make chaos` the three-site scenarios; .ci/run calls both.
test: system-test $(STAMP) $(WAN)
	$(PY) -m pytest -q -m "not chaos"

test-fast: $(STAMP)   # no Consul, no BIND, no root: the layer contracts, the rule table, the other pure tests
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -m "not integration and not chaos"

# The release: sdist and wheel built with python -m build, the wheel installed into a clean venv
# that runs consulha --version and validates the conf/ examples (scripts/wheel-test).
wheel-test: $(STAMP)
	$(PY) -m pip install -q -e '.[release]'
	PY=$(PY) scripts/wheel-test

# What the Ansible role installs from (consulha_pip_wheelhouse_src): consulha and every
# dependency as wheels in dist/wheelhouse, so the app hosts need no package index.
wheelhouse: $(RUNTIME)
	rm -rf dist/wheelhouse
	$(PY) -m pip wheel -q -w dist/wheelhouse .
	@ls dist/wheelhouse

bench: system-test $(STAMP) $(WAN)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/failover.py --runs 20 --scenarios check,check-fbc3,sigkill,sigstop,stop,handover
	$(PY) bench/consul_lock.py --runs 3
	$(PY) bench/sites.py --runs 20 --lock-runs 3
	$(PY) bench/dns_failover.py --runs 10
	$(PY) bench/cutover.py --runs 5
	$(PY) bench/idle.py
	$(PY) bench/consul_requests.py
	$(PY) bench/scale.py --groups 1,10,25,40
	$(PY) bench/flapping.py --runs 3
	$(PY) bench/flapping.py --lock-delays 1s --standby-busy 2.5 --runs 2
	$(PY) bench/damping_models.py
	$(PY) bench/report.py

chaos: system-test $(STAMP) $(WAN)
	$(PY) -m pytest -q -m chaos tests/chaos

# The whole topology deployed with ansible/site.yml onto seven systemd-nspawn hosts, then the
# proof steps of issue 7 (root; ~10 min cold). Figures in bench/results/deploy.json.
deploy-test: system-nspawn $(VENV)/.deploy-installed
	cd ansible && PATH="$(abspath $(VENV))/bin:$$PATH" ansible-lint -q --profile production
	$(PY) -m deploylab

# The README's quick start, as written there, in a clean bookworm container with a clone of the
# commit under test (HEAD; uncommitted changes are not in it). Root. Figures in
# bench/results/fresh.json.
fresh-test: system-nspawn $(RUNTIME)
	$(PY) -m deploylab.fresh

clean:
	rm -rf $(VENV) build dist *.egg-info
