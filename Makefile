# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates (or reuses) .venv and installs the project into it first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.inferops-installed

.PHONY: demo demo-llm demo-profiles test test-fast lint hosts hosts-down system-deps test-servers bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests use (promtool, node_exporter, debootstrap,
# systemd-nspawn, chromium, nftables, wrk, hey). Needs root; fails if any is
# missing and it cannot install them.
system-deps:
	scripts/install-system-deps

# Inference servers not written here that the load tests drive (MLServer,
# TorchServe, KServe), each in its own venv under .venv-servers/: their pins
# clash with ours. Idempotent.
test-servers:
	PYTHON=$(PYTHON) scripts/install-test-servers

demo: $(STAMP)
	$(BIN)/inferops demo

# tinylm with continuous batching vs --max-num-seqs 1: reports/demo-llm/index.html
demo-llm: $(STAMP)
	$(BIN)/inferops demo --llm

# FP32 vs INT8 (dynamic, static) vs OpenVINO of the embedded cnn, each served on the same
# pinned core and swept, with the accuracy against FP32: reports/demo-profiles/index.html
demo-profiles: $(STAMP)
	$(BIN)/inferops demo --profiles

# In CI (CI=true) a missing system package fails here and a skipped tier fails the
# run; elsewhere the tests run anyway and their last lines list the skipped tiers.
# The real-host tier runs alongside the rest (scripts/run-tests; INFEROPS_TEST_SERIAL=1
# runs them one after the other).
test: $(STAMP) test-servers
	scripts/install-system-deps || test "$$CI" != true
	PYTHON_BIN=$(BIN)/python scripts/run-tests

# Everything but the real-host and browser tiers, for a quick loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not realhost and not browser and not slow"

# Long, random fuzzing of the server's request decoding and its OpenAPI routes; failures are
# saved in .hypothesis/ and replayed first next time. CI runs the fixed-seed profile.
.PHONY: fuzz
fuzz: $(STAMP)
	INFEROPS_FUZZ_PROFILE=inferops-fuzz $(BIN)/python -m pytest tests/server/test_fuzz.py \
		tests/server/test_openapi.py -q --hypothesis-show-statistics

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Boot the nspawn test fleet by hand (see tests/hosts/); `make hosts-down` stops it.
hosts: $(STAMP) system-deps
	$(BIN)/python -m tests.hosts up

hosts-down: $(STAMP)
	$(BIN)/python -m tests.hosts down

clean:
	rm -rf $(VENV) .venv-servers .pytest_cache .ruff_cache build *.egg-info
