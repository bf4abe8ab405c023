# 销售副驾 — the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run test test-fast test-scaleout bench eval lint install

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/copilot run

# Scale-out tests (tests/scaleout: PostgreSQL, Redis, a Chroma server, `copilot worker` processes) run
# in this same command; each skips with its reason (-rs) if a service is down.
test: $(STAMP)
	$(VENV)/bin/pytest -n 2 -q -rs

test-scaleout: $(STAMP)
	$(VENV)/bin/pytest -q -rs tests/scaleout

bench: $(STAMP)
	$(PY) -m benches

eval: $(STAMP)
	$(VENV)/bin/copilot eval retrieval --passages ../shared/evaldata/retrieval/afqmc_dev_faq_passages.jsonl --queries ../shared/evaldata/retrieval/afqmc_dev_faq_queries.jsonl --json
	$(VENV)/bin/copilot eval retrieval --docs evals/datasets/kb_docs --queries evals/datasets/kb_docs_queries.jsonl -k 10 --json
	$(VENV)/bin/copilot eval asr --manifest ../shared/evaldata/asr/manifest.jsonl --json

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
