# Two entry points for a fresh machine with only Python 3.10+ and pip:
#   make demo   - create .venv if missing, install, run the main job
#   make test   - create .venv if missing, install with test extras, run the suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The brax and mctx extras too, so that the Brax adapter's and tree search's tests run
# rather than skip.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[run,test,brax,mctx]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/jaxmbrl train pets --env Pendulum-v1 --out runs/demo

# Two workers, test by test (most of the suite's time is XLA compiling, single-threaded,
# so two tests compile side by side on a 2-core machine); files that build a module
# fixture mark themselves `xdist_group` so that fixture is built once.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# The API reference, from the docstrings (mkdocs + mkdocstrings); built into a temporary
# folder, committed nowhere. Strict: any warning fails the build.
SITE ?= $(or $(TMPDIR),/tmp)/jaxmbrl-site
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir $(SITE)
	@echo "API reference: $(SITE)/index.html"

clean:
	rm -rf $(VENV) runs
