# The two commands: `make book` and `make test`. Both create .venv and install requirements.lock.
# PROFILE=quick (default, laptops and CI) or PROFILE=paper (the paper's settings; use a GPU).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick
DATASET ?= both
SEED ?= 0
DEVICE ?= auto
# Raw data: ../shared/data when it sits beside the checkout, else torchvision's download cache.
DDSA_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(HOME)/.cache/ddsa/data)
DDSA_CACHE ?= $(CURDIR)/.cache
export DDSA_DATA DDSA_CACHE
# Chapters are MyST Markdown notebooks (jupytext); papermill, nbval and the book read them as .ipynb
# written under _build/, never beside the sources.
CHAPTERS := $(sort $(wildcard book/[0-9][0-9]_*.md))
STAGE := _build/stage
NBVAL := _build/nbval

.PHONY: venv book execute html linkcheck browser-test test test-slow lock clean reproduce lab

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps torchattacks==3.5.1   # its requests~=2.25.1 pin is stale and unused
	$(BIN)/pip install -q --no-deps -e .
	mkdir -p $(VENV)/share/jupyter/lab/settings   # JupyterLab opens the .md chapters as notebooks
	cp tools/lab_overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

# Execute every chapter with papermill into a staging copy of the book, then render it.
execute: venv
	rm -rf $(STAGE) && mkdir -p $(STAGE)/book
	cp _config.yml _toc.yml $(STAGE)/
	cp -r tools $(STAGE)/
	cp $(filter-out $(CHAPTERS),$(wildcard book/*.md)) book/*.bib $(STAGE)/book/
	DDSA_PROGRESS=text $(BIN)/python -m ddsa_core reproduce --profile $(PROFILE) --dataset $(DATASET) --seed $(SEED) \
	  --device $(DEVICE) --out $(STAGE) --force

# The paper profile for one dataset, resumable: `make reproduce PROFILE=paper DATASET=mnist`.
reproduce: venv
	$(BIN)/python -m ddsa_core reproduce --profile $(PROFILE) --dataset $(DATASET) --seed $(SEED) --device $(DEVICE)

# JupyterLab on the chapters, reusing the data and the models `make book` and `make test` cached.
lab: venv
	$(BIN)/jupyter lab --notebook-dir=book $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)  # root: containers, CI

html: venv
	bash tools/fetch_mathjax.sh
	rm -rf $(STAGE)/book/_static && cp -r book/_static $(STAGE)/book/_static
	$(BIN)/jupyter-book build $(STAGE) --path-output . -W --keep-going

book: execute html linkcheck
	@echo "Book: $(CURDIR)/_build/html/index.html"

# Sphinx's linkcheck builder on the staged book: internal links must resolve; external links are
# listed in _build/linkcheck/_build/html/output.json and never fetched (linkcheck_ignore, _config.yml).
linkcheck: venv
	@test -f $(STAGE)/_config.yml || { echo "no $(STAGE): run make execute first" >&2; exit 1; }
	$(BIN)/jupyter-book build $(STAGE) --path-output _build/linkcheck --builder linkcheck -W --keep-going -q

# The built book in headless Chromium (tests_browser/): every page served from localhost, checked
# for console errors, failed requests, typeset maths, loaded images and internal links, plus the
# search page; then chapter 2 run in JupyterLab (tests_browser/test_jupyterlab.py). Screenshots go to _build/screenshots. Needs `make book` first. Debian's chromium is
# installed when missing (CI runs as root); elsewhere set CHROMIUM=/path/to/chromium.
browser-test: venv
	@test -f _build/html/index.html || { echo "no _build/html: run make book first" >&2; exit 1; }
	@command -v chromium >/dev/null || test -n "$$CHROMIUM" || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(BIN)/python tools/book_check.py _build/html
	$(BIN)/python -m pytest -q -p no:cacheprovider tests_browser

# nbval runs with text bars: with ipywidgets installed each tqdm bar is a widget, and chapter 6's
# stream of widget messages outlasts nbval's 5 s wait for a cell's output (CI failed so, 481a964).
# The unit tests without the `slow` ones (a 5-minute budget on two cores; the slowest are listed in the log),
# then nbval over the chapters. `make test-slow` runs the slow ones (smoke-profile CIFAR-10, chapters,
# papermill); CI runs both.
test: venv
	$(BIN)/python -m pytest -q -m "not slow" --durations=15 tests
	rm -rf $(NBVAL) && mkdir -p $(NBVAL)
	for f in $(CHAPTERS); do $(BIN)/jupytext --quiet --to ipynb -o $(NBVAL)/$$(basename $$f .md).ipynb $$f || exit 1; done
	DDSA_PROGRESS=text $(BIN)/python -m pytest -q --nbval-lax -p no:cacheprovider --junitxml=_build/nbval.xml $(NBVAL)/*.ipynb

test-slow: venv
	$(BIN)/python -m pytest -q -m slow --durations=10 tests

lock: venv
	$(BIN)/pip freeze --exclude-editable | grep -v -E '^torchattacks==' > requirements.lock

clean:
	rm -rf _build .cache
