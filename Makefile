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
SCENARIOS ?=
REPEATS ?=
WORKERS ?=
TARGET ?=
ENGINE ?= auto
RUN ?=
AGAINST ?=
INJECT ?=
BASELINE ?=

opt = $(if $($(1)),--$(2) '$($(1))',)
LOAD_OPTS = $(call opt,DURATION,duration) $(call opt,WARMUP,warmup) $(call opt,USERS,users) \
            $(call opt,SCENARIOS,scenarios) $(call opt,REPEATS,repeats) $(call opt,WORKERS,workers) \
            $(call opt,TARGET,target) --engine '$(ENGINE)'

.PHONY: help setup venv os-packages bench profile report example gate up down status test clean

help:
	@echo "make bench | profile | report [RUN=dir] | gate [AGAINST=ref] | up | down | status | test"

setup: venv os-packages

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

os-packages:
	@bash stack/install-os-packages.sh

bench: setup
	$(EDGEBENCH) bench $(LOAD_OPTS)

profile: setup
	$(EDGEBENCH) profile $(LOAD_OPTS)

report: venv
	$(EDGEBENCH) report $(call opt,RUN,run)

# The committed example report: a real profile run, rendered to the repository root.
example: profile
	$(EDGEBENCH) report --example

gate: setup
	$(EDGEBENCH) gate $(call opt,AGAINST,against) $(call opt,BASELINE,baseline) $(foreach kv,$(INJECT),--inject '$(kv)') --engine '$(ENGINE)'

up: setup
	$(EDGEBENCH) up --engine '$(ENGINE)'

down: venv
	$(EDGEBENCH) down

status: venv
	$(EDGEBENCH) status

# The HTML report's test screenshots it in headless Chromium: install it too.
test: venv
	@EDGEBENCH_WITH_CHROMIUM=1 bash stack/install-os-packages.sh
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) .pytest_cache
