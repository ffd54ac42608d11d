# pacer: a virtualenv in .venv, torch installed first from the pinned CPU build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip -q --disable-pip-version-check
STAMP := $(VENV)/.installed
TRAIN_STAMP := $(VENV)/.installed-train
RUN := runs/cartpole-$(shell date +%Y%m%d-%H%M%S)
PICTURES := runs/pictures/LunarLander-v3

.PHONY: setup train test test-ray test-notebook test-atari test-wheel test-slow soak bench pictures lint typecheck check clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[dev,tb,plot]'
	touch $(STAMP) $(TRAIN_STAMP)

setup: $(STAMP)  ## create .venv and install pacer with its dev extras

$(TRAIN_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[video]'
	touch $(TRAIN_STAMP)

train: $(TRAIN_STAMP)  ## the main job: train CartPole on local worker processes, evaluate 100 episodes, film one
	$(BIN)/pacer train --run-dir $(RUN)
	$(BIN)/pacer eval $(RUN) --episodes 100 --video $(RUN)/videos --video-episodes 1
	@echo "the trained agent plays in $(RUN)/videos/episode-000.mp4"

test: $(STAMP)  ## the default test run (fast; slow, soak and ray tests are excluded)
	$(BIN)/python -m pytest -q

test-ray: $(STAMP)  ## the Ray backend on a two-node cluster on this machine (loopback only; installs the ray extra)
	$(PIP) install -c constraints.txt -e '.[ray]'
	$(BIN)/python -m pytest -q -m ray --timeout=600

test-notebook: $(STAMP)  ## execute examples/notebook.ipynb as Jupyter would (nbclient): spawned workers, by-value code
	$(BIN)/python -m pytest -q -m notebook --timeout=600

test-atari: $(STAMP)  ## a short real Atari run (ALE/Pong-v5, 2 processes): train, eval with video, export, resume
	$(BIN)/python -m pytest -q -m atari --timeout=600

test-wheel: $(STAMP)  ## build the wheel, install it beside an existing torch in a fresh virtualenv, train from it
	$(BIN)/python -m pytest -q -m wheel --timeout=900

test-slow: $(STAMP)  ## long checks: real training to a target return
	$(BIN)/python -m pytest -q -m slow --timeout=900

soak: $(STAMP)  ## repeated faults and endurance (about 40 minutes): counts go to benchmarks/results/
	$(BIN)/python benchmarks/soak.py kills 20
	$(BIN)/python benchmarks/soak.py cycles 200
	$(BIN)/python benchmarks/soak.py soak 30
	$(BIN)/python -m pytest -q -m soak tests/test_faults.py  # the tight timing bounds (a quiet machine)

bench: $(STAMP)  ## the benchmark suite against Stable-Baselines3 (about 2.5 hours): JSON + PNG in benchmarks/results/
	$(PIP) install -c constraints.txt -e '.[bench,mujoco]'
	$(BIN)/pacer bench coldstart
	$(BIN)/pacer bench throughput --env CartPole-v1 --backends inline,local --workers 1,2 --envs 32,256 --seconds 6
	$(BIN)/pacer bench throughput --env CartPole-v1 --backends local --workers 2 --envs 256,1024 --seconds 6 \
		--set algo.epochs=1 --set algo.minibatches=1
	$(BIN)/pacer bench throughput --env LunarLander-v3 --backends local --workers 2 --envs 16 --seconds 15 \
		--preset lunarlander --env-limit
	$(BIN)/pacer bench scaling --env LunarLander-v3 --workers 1,2,4 --seconds 15 --repeats 3
	$(BIN)/pacer bench scaling --env HalfCheetah-v5 --preset halfcheetah --workers 1,2,4 --seconds 15 --repeats 3
	$(BIN)/pacer bench compare --env LunarLander-v3 --seeds 5 --algos ppo --cap 600
	$(BIN)/pacer bench timed --env HalfCheetah-v5 --pacer-seconds 300 --sb3-seconds 1500
	$(BIN)/pacer bench timed --env Hopper-v5 --pacer-seconds 300 --sb3-seconds 1500
	$(BIN)/pacer bench compare --env CartPole-v1 --seeds 5 --classic-cap 800

pictures: $(STAMP)  ## the README's pictures (docs/images): train LunarLander, film a greedy episode, plot the curve
	rm -rf $(PICTURES)
	$(BIN)/pacer train --env LunarLander-v3 --seed 0 --run-dir $(PICTURES) --no-progress
	$(BIN)/pacer eval $(PICTURES) --episodes 10 --video-episodes 1 --video $(PICTURES)/videos
	$(BIN)/pacer plot $(PICTURES) --out docs/images/learning-curve.png
	$(BIN)/python docs/pictures.py $(PICTURES)/videos/episode-000.mp4 docs/images/lunarlander.gif
	du -ch docs/images/* | tail -n 1

lint: $(STAMP)  ## ruff, and the import-layer contracts of pyproject.toml (lint-imports: no cycles, one direction)
	$(BIN)/ruff check src tests docs scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
