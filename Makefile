# Cairn: `make run` starts the daemon and nar-bridge on the embedded store; `make cluster` starts a
# cluster (PostgreSQL, SeaweedFS, two daemons, two nar-bridges); `make test` runs every test.
# Both install what is missing first (apt packages, a virtual environment, the package).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= $(CURDIR)/data
STORE ?= local://$(DATA)/store
LISTEN ?= grpc+unix://$(DATA)/cairn.sock
BRIDGE ?= 127.0.0.1:9000
APT_PACKAGES := fuse3 libfuse3-dev pkg-config nix-bin xz-utils nginx postgresql

.PHONY: setup apt venv run cluster test proto bench fuzz clean

setup: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  SUDO=$$([ $$(id -u) -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# compat mode puts the checkout on sys.path with a plain .pth: the default editable finder
	# costs ~10 ms at every interpreter start, which a short `cairn dump` feels.
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

# The daemon runs in the background, nar-bridge in the foreground; Ctrl-C stops both.
run: setup
	mkdir -p $(DATA)
	@echo "cairn is $(abspath $(VENV))/bin/cairn; to use the store served here from another shell:"
	@echo '  export PATH="$(abspath $(VENV))/bin:$$PATH" CAIRN_STORE=$(STORE)'
	$(VENV)/bin/cairn daemon --listen $(LISTEN) --store $(STORE) & daemon=$$!; \
	trap 'kill -TERM $$daemon 2>/dev/null; wait $$daemon' EXIT INT TERM; \
	$(VENV)/bin/cairn nar-bridge --listen $(BRIDGE) --store $(STORE) --nar-cache $(DATA)/nar-cache

# PostgreSQL, SeaweedFS, two daemons and two nar-bridges on one database and bucket, started by the
# code the tests use; it prints their addresses and the --store URL. Ctrl-C stops them all.
cluster: setup
	$(PY) -m tests.services.cluster

test: setup
	$(VENV)/bin/pytest

proto: venv
	$(PY) proto/generate.py

bench: setup
	$(PY) bench/run_all.py

# Every parser under atheris, 1,000,000 inputs each (RUNS=N for fewer); crashes land in bench/out/fuzz/crashes.
RUNS ?= 1000000
fuzz: setup
	$(PY) -m pip install -q -e '.[test,fuzz]' --config-settings editable_mode=compat
	$(PY) bench/fuzz.py --runs $(RUNS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
