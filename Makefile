# bsm-gateway: `make run` starts the gateway on its embedded defaults, `make test` runs the
# whole suite. Both create .venv on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint image unit chaos fuzz bench-memory bench bench-policy train-classifier score-policy bench-postfix bench-imap bench-scaling bench-replicas bench-archive bench-purge clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/bsm-gateway serve

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

# The container image (podman, mmdebstrap; as root): localhost/bsm-gateway:latest.
image: $(BIN)/.installed
	deploy/build-image

bench: $(BIN)/.installed
	$(BIN)/python -m bench.e2e

bench-policy: $(BIN)/.installed
	$(BIN)/python -m bench.policy

# The content policy's learned component, trained on the blind corpus's train and dev splits
# (thresholds by cross-validation); writes config/classifier/content.npz.
train-classifier: $(BIN)/.installed
	$(BIN)/python -m tools.train_classifier $(ARGS)

# Precision and recall per rule and per language on the third blind set (never tuned on).
score-policy: $(BIN)/.installed
	$(BIN)/bsm-gateway policy score --only content. tests/corpus/blind/test-3 $(ARGS)

# Next to Postfix (smtp-source, smtp-sink and a private Postfix, started as root); about 20 min.
bench-postfix: $(BIN)/.installed
	$(BIN)/python -m bench.postfix

# IMAP ingest next to the MX: the same messages fetched from a private Dovecot or sent by
# smtp-source, through the gateway on SQLite (needs root for Dovecot).
bench-imap: $(BIN)/.installed
	$(BIN)/python -m bench.imap

# The fuzz tests at ten times their CI size: 205,000 cases, about 20 minutes.
fuzz: $(BIN)/.installed
	BSM_FUZZ_SCALE=10 $(BIN)/pytest tests/fuzz -p no:cacheprovider

# 200 sessions sending a 25 MB message each at once: the gateway's peak RSS; ~5 min.
bench-memory: $(BIN)/.installed
	$(BIN)/python -m bench.memory

# The chaos test at ten times its CI size: 20,000 messages, twelve kill -9s, both stores.
chaos: $(BIN)/.installed
	BSM_CHAOS_MESSAGES=20000 $(BIN)/pytest tests/integration/test_chaos.py -s -p no:cacheprovider

# Throughput and latency over 1 to 100 concurrent sessions, memory of 1000 idle ones; ~4 min.
bench-scaling: $(BIN)/.installed
	$(BIN)/python -m bench.scaling

# 1, 2 and 3 replicas (serve processes) on one PostgreSQL: throughput and the database's
# share of the CPU, for sizing a deployment.
bench-replicas: $(BIN)/.installed
	$(BIN)/python -m bench.replicas

# The archive at scale: build 1,000,000 messages, append and sign them, index them, time
# each search, verify them (SQLite; add ARGS=--database=postgresql for PostgreSQL).
bench-archive: $(BIN)/.installed
	$(BIN)/python -m bench.archive $(ARGS)

# Intake latency while 100,000 records past their retention are purged; ~2 min.
bench-purge: $(BIN)/.installed
	$(BIN)/python -m bench.purge $(ARGS)

clean:
	rm -rf $(VENV) var
