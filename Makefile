# explore-attention — every target runs from a clean clone.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests and notebooks never reach a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Short training runs in notebooks and tests (notebooks read it; users unset it for full runs).
TEST_ENV := EXPLORE_ATTENTION_QUICK=1
# Two pytest workers on two cores: one intra-op thread each, or OpenMP oversubscribes.
TEST_THREADS := OMP_NUM_THREADS=1
DEBS := chromium espeak-ng sox
PORT ?= 7860

.PHONY: debs setup demo test test-fast test-install lint format lab bench results docs docs-serve clean

setup: $(STAMP) debs

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Debian packages the suite needs (headless Chromium for browser tests, espeak-ng for speech);
# elsewhere `python -m explore_attention.tools` prints the install command for the platform.
debs:
	@command -v dpkg >/dev/null || exit 0; \
	missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (run as root or: sudo apt-get install$$missing)"; fi; \
	fi
	@$(BIN)/python -m explore_attention.tools || echo "(the browser / speech tests will fail until these are installed)"

demo: setup
	$(BIN)/explore-attention demo --port $(PORT)

test: setup
	$(TEST_ENV) $(TEST_THREADS) $(BIN)/python -m pytest -n 2 --dist loadfile --nbmake --nbmake-timeout=300 tests notebooks

test-fast: setup
	$(TEST_ENV) $(TEST_THREADS) $(BIN)/python -m pytest -n 2 -m "not slow" tests

# The package as users install it, without make: plain pip in a fresh venv (fast tests), the
# wheel and the sdist, inspect + a notebook outside the checkout (~4 min; part of `make test`).
test-install: setup
	$(TEST_ENV) $(TEST_THREADS) $(BIN)/python -m pytest tests/test_install.py

lint: setup
	$(BIN)/ruff check src tests benchmarks docs/hooks
	$(BIN)/ruff format --check src tests benchmarks docs/hooks

format: setup
	$(BIN)/ruff format src tests benchmarks docs/hooks
	$(BIN)/ruff check --fix src tests benchmarks docs/hooks

lab: setup
	$(BIN)/python -m pip install --quiet jupyterlab
	$(BIN)/jupyter lab notebooks/

# Speed, memory and approximation quality of every mechanism, the core's error against PyTorch
# per dtype, and our GPT against the nanoGPT CPU recipe → benchmarks/results/.
bench: setup
	OMP_NUM_THREADS=2 $(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.accuracy_core
	$(BIN)/python -m benchmarks.gpt_nanogpt --steps 1000 --threads 1

# The measured results the docs quote → docs/results/: translation by length, attention vs RNN
# and the recall controls (shipped checkpoints, minutes); then every trained model of
# src/explore_attention/checkpoints/ this round added, retrained into runs/ with the command its
# README names (~45 CPU-minutes in all; compare runs/*/ with the shipped folders).
results: setup
	$(BIN)/python -m explore_attention.tasks.translation_report --out docs/results/
	$(BIN)/python -m explore_attention.tasks.compare --out docs/results/
	$(BIN)/python -m explore_attention.tasks.compare --recall-controls --out docs/results/
	OMP_NUM_THREADS=1 $(BIN)/python -m explore_attention.tasks.gpt gpt-bpe --steps 500 --out runs/gpt-pydoc-bpe --overwrite
	cp runs/gpt-pydoc-bpe/README.md docs/results/gpt_pydoc_bpe.md
	OMP_NUM_THREADS=1 $(BIN)/python -m explore_attention.tasks.hf_models llama-pydoc --out runs/llama-pydoc --overwrite
	OMP_NUM_THREADS=1 $(BIN)/python -m explore_attention.tasks.hf_models t5-numbers-de --steps 600 --out runs/t5-numbers-de --overwrite
	for a in dense sliding linear; do \
	  $(BIN)/explore-attention train gpt-char --steps 1500 --batch-size 16 --eval-every 500 \
	    -o num_layers=2 -o num_heads=4 -o d_model=64 -o max_len=128 -o attention=$$a -o window=16 \
	    --out runs/gpt-char-$$a --overwrite; done
	$(BIN)/explore-attention train multimodal-scenes --steps 3000 --eval-every 500 \
	  -o num_train=20000 -o locate=True -o text_layers=3 --out runs/multimodal-scenes --overwrite
	$(BIN)/python -m explore_attention.tasks.multimodal --checkpoint runs/multimodal-scenes

# The site executes every notebook (short runs) and the papers' reproductions while it builds.
DOCS_ENV := $(TEST_ENV) NO_MKDOCS_2_WARNING=1
docs: setup
	$(DOCS_ENV) $(BIN)/mkdocs build --strict

docs-serve: setup
	$(DOCS_ENV) $(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) attention-out site .pytest_cache
