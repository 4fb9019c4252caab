# edgebench front door. Every target runs the edgebench CLI in the project's
# own virtual environment, which is created on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EDGEBENCH := $(PY) -m edgebench

DURATION ?=
WARMUP ?=
USERS ?=
SCRAPE_RATE ?=
SENSOR_RATE ?=
SCENARIOS ?=
REPEATS ?=
WORKERS ?=
TARGET ?=
ENGINE ?= auto
RUN ?=
AGAINST ?=
INJECT ?=
BASELINE ?=
N ?= 30
ROUNDS ?=
ONLY ?=
CONDITIONS ?=
STEPS ?=
SENSOR_STEPS ?=
MAX_SERIES ?=
SWEEPS ?=
VARIANTS ?=
SHAPES ?=
CONFIGS ?=
SERIES ?=
CAP ?=

opt = $(if $($(1)),--$(2) '$($(1))',)
LOAD_OPTS = $(call opt,DURATION,duration) $(call opt,WARMUP,warmup) $(call opt,USERS,users) \
            $(call opt,SCRAPE_RATE,scrape-rate) $(call opt,SENSOR_RATE,sensor-rate) \
            $(call opt,SCENARIOS,scenarios) $(call opt,REPEATS,repeats) $(call opt,WORKERS,workers) \
            $(call opt,TARGET,target) --engine '$(ENGINE)'

.PHONY: help setup venv os-packages images-offline lint test-fast bench profile report example gate gate-calibrate steps capacity collectors up down status test test-platforms clean

help:
	@echo "make bench | profile | report [RUN=dir] | gate [AGAINST=ref] | gate-calibrate [N=30] | steps [ROUNDS=5] [ONLY=name] | capacity [STEPS=..] [MAX_SERIES=..] | collectors [SHAPES=..] [SERIES=..] [REPEATS=3] [ROUNDS=5] | images-offline | up | down | status | test | test-platforms"

setup: venv os-packages

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

os-packages:
	@bash stack/install-os-packages.sh

# The stack's images without an image registry (docs/stack.md, "Docker engine").
images-offline: venv
	$(EDGEBENCH) images-offline

bench: setup
	$(EDGEBENCH) bench $(LOAD_OPTS)

profile: setup
	$(EDGEBENCH) profile $(LOAD_OPTS)

report: venv
	$(EDGEBENCH) report $(call opt,RUN,run)

# The committed example report: a real profile run, rendered to the repository root.
example: profile
	$(EDGEBENCH) report --example

# make turns any failure into exit 2; bin/edgebench gate exits with the gate's own code
# (0 pass, 1 regression, 2 error, 3 could not measure): CI calls that (.ci/run).
gate: setup
	$(EDGEBENCH) gate $(call opt,AGAINST,against) $(call opt,BASELINE,baseline) $(foreach kv,$(INJECT),--inject '$(kv)') --engine '$(ENGINE)'

# N unchanged-code gates and N per injected fault: verdict counts and run times.
gate-calibrate: setup
	$(EDGEBENCH) gate-calibrate --runs '$(N)' $(call opt,CONDITIONS,conditions) $(call opt,AGAINST,against) --engine '$(ENGINE)'

# Before/after of each kept optimisation step (docs/steps.md).
steps: setup
	$(EDGEBENCH) steps $(call opt,ROUNDS,rounds) $(call opt,ONLY,only) --engine '$(ENGINE)'

# Where each variant breaks: the load and series sweeps.
capacity: setup
	$(EDGEBENCH) capacity $(call opt,STEPS,steps) $(call opt,SENSOR_STEPS,sensor-steps) \
	  $(call opt,MAX_SERIES,max-series) $(call opt,SWEEPS,sweeps) $(call opt,VARIANTS,variants) \
	  $(call opt,DURATION,duration) --engine '$(ENGINE)'

# VictoriaMetrics against Prometheus, shipped and tuned: the operating-point ratio with its
# interval, series held in 150 MB as k of n runs, bytes per series; prints its estimate first.
collectors: setup
	$(EDGEBENCH) collectors $(call opt,SHAPES,shapes) $(call opt,CONFIGS,configs) $(call opt,SERIES,series) \
	  $(call opt,REPEATS,repeats) $(call opt,ROUNDS,rounds) $(call opt,CAP,cap) --engine '$(ENGINE)'

up: setup
	$(EDGEBENCH) up --engine '$(ENGINE)'

down: venv
	$(EDGEBENCH) down

status: venv
	$(EDGEBENCH) status

# The HTML report's test screenshots it in headless Chromium: install it too.
# TEST_WORKERS test processes side by side (pytest-xdist): the suite mostly waits on real
# windows (0.47 of a core on average when run one test at a time). Tests are handed out
# one at a time, except a module marked xdist_group (its shared stack or run starts once),
# which runs whole on one worker. TEST_WORKERS=0: one process.
# Tests marked alone (millisecond latency comparisons) run afterwards, with nothing beside them.
TEST_WORKERS ?= 3
test: venv lint
	@EDGEBENCH_WITH_CHROMIUM=1 bash stack/install-os-packages.sh
	$(PY) -m pytest -q -m "not platform and not alone" $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup) tests
	$(PY) -m pytest -q -m "alone and not platform" tests

# The platform matrix {native, docker} x {cgroup v1, cgroup v2} (docs/stack.md#platforms):
# installs Docker, Compose (v1 from Debian, v2 from PyPI), QEMU and a Debian kernel when
# missing; a cell that cannot run fails with one line naming what is missing (a plain
# pytest run skips it instead).
test-platforms: venv
	@EDGEBENCH_WITH_PLATFORMS=1 bash stack/install-os-packages.sh
	EDGEBENCH_PLATFORMS_REQUIRED=1 $(PY) -m pytest -q -rs -m "platform and not unfinished" tests

# The fast tier, for the edit-test loop: under 20 s. FAST_WORKERS test processes (one per
# core here: the tier is CPU-bound); FAST_WORKERS=0: one process.
FAST_WORKERS ?= 2
test-fast: venv
	$(PY) -m pytest -q -m "not slow and not platform" $(if $(filter-out 0,$(FAST_WORKERS)),-n $(FAST_WORKERS)) tests

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
