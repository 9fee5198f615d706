# rcollapse: `make demo` and `make test` work on a fresh machine (they install first).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch. pyproject.toml asks for torch>=2.13,<2.15, which this wheel
# satisfies, so the project install below adds no second (multi-GB CUDA) build. On a GPU
# machine: `make install TORCH_SPEC='torch==2.14.1'` (or install torch yourself first).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.rcollapse-installed
PYTEST_WORKERS ?= 2
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
DEMO_UTILITIES ?= x,x_inv,log,logsigmoid,adaptive

.PHONY: help install demo study test test-e2e test-full test-slurm bench bench-gpu real-shapes lint clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install the project with its dev extras (idempotent)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: install  ## the default job as a multirun over five utilities, then the comparison table
	$(PY) run.py -m utility=$(DEMO_UTILITIES) hydra.sweep.dir=outputs/demo/$$(date +%Y-%m-%d_%H-%M-%S) \
	  && $(PY) -m rcollapse.report $$(ls -d outputs/demo/*/ | tail -n 1)

study: install  ## the offline risk study at matched KL: 16 policies per arm (32 PPO runs), then the report
	$(PY) run.py -m +sweep=ppo_study hydra.sweep.dir=outputs/study/$$(date +%Y-%m-%d_%H-%M-%S) \
	  && $(PY) -m rcollapse.report $$(ls -d outputs/study/*/ | tail -n 1)

test: install  ## the fast test suite, in-process (CI runs it first; <= 6 min on 2 cores)
	$(PY) -m pytest -m "not slow and not slurm and not e2e" -n $(PYTEST_WORKERS) -q

test-e2e: install  ## the end-to-end tests: run.py and the tools started as commands (CI runs it after test)
	$(PY) -m pytest -m "e2e and not slow and not slurm" -n $(PYTEST_WORKERS) -q

test-full: install  ## every test but the Slurm ones: fast, end-to-end and slow
	$(PY) -m pytest -m "not slurm" -n $(PYTEST_WORKERS) -q

test-slurm: install  ## start a single-node Slurm cluster, run the Slurm tests, stop it
	scripts/slurm_local.sh install
	scripts/slurm_local.sh start
	eval "$$(scripts/slurm_local.sh env)" && $(PY) -m pytest -m slurm tests/test_slurm.py -q -s; \
	  status=$$?; scripts/slurm_local.sh stop; exit $$status

bench: install  ## benchmarks: ratios measured side by side in one run
	$(PY) -m benchmarks.grouped_vs_pair_forward
	$(PY) -m benchmarks.collapse_solver
	$(PY) -m benchmarks.ensemble_phase2
	$(PY) -m benchmarks.ppo_throughput
	$(PY) -m benchmarks.packed_vs_padded

bench-gpu: install  ## the GPU check at the papers' shapes (one GPU, <= 10 min): throughput and projected costs
	$(PY) -m benchmarks.gpu_check --out outputs/gpu_check

real-shapes: install  ## every real experiment end to end at its real widths (1 layer, local copies, CPU): s/step per width
	$(PY) -m benchmarks.real_shapes --out outputs/real_shapes/$$(date +%Y-%m-%d_%H-%M-%S) $(REAL_SHAPES_ARGS)

lint: install  ## ruff
	$(VENV)/bin/ruff check .

clean:  ## remove the venv and caches (outputs/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache
