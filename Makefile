# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PRESET ?= default

.PHONY: install run test test-fast models train train-quick bench screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch is pinned here (a local CPU wheel on the build machines); pyproject keeps torch>=2.1
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,ray]'
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/aimusicd models fetch

run: models
	$(BIN)/aimusicd run --preset $(PRESET)

test: models
	$(BIN)/python -m pytest

# What test-fast leaves out: tests that need more than Python and PortAudio (weights, a JACK
# server, liblo-tools, an integration's own program, chromium, a Ray cluster) or take long.
FAST_LEAVES_OUT := weights jack liblo tools browser ray slow
space := $(subst ,, )
test-fast: install
	@echo "test-fast leaves out the tests marked: $(FAST_LEAVES_OUT) (pyproject.toml says what each needs; make test runs them all)"
	$(BIN)/python -m pytest -m "not $(subst $(space), and not ,$(FAST_LEAVES_OUT))"

train: models
	$(BIN)/aimusicd train

train-quick: models
	$(BIN)/aimusicd train --quick

bench: models
	$(BIN)/python benchmarks/scan.py
	$(BIN)/python benchmarks/live.py

# The README's dashboard pictures, taken by the browser tests (full analyses, so Demucs shows too)
screenshots: models
	AIMUSICD_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/test_browser.py -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
