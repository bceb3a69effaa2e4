# frbook: one command to build the book, one to test everything.
# Nothing but Python 3.10+ is needed beforehand: each target creates .venv and installs into it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
STAMP  := $(VENV)/.frbook-installed
HTML   := _build/html/index.html

# Everything the built book depends on: when one is newer than the HTML, the book is rebuilt.
BOOK_SOURCES := _config.yml _toc.yml references.bib $(wildcard book/*.md book/*.ipynb) \
                $(shell find book/results frbook -name '*.json' -o -name '*.py' 2>/dev/null) \
                $(shell find _ext -type f -not -path '*/__pycache__/*' 2>/dev/null)
# The execution cache keys on a notebook's source, not on the result files it reads: when a result
# file is newer than the last build, the cache goes, so no page shows numbers of older files.
RESULTS_STAMP := _build/.results-read
# The chapter notebooks, in the order of the table of contents.
CHAPTERS := $(shell sed -n 's|^ *- file: \(book/ch[^ ]*\)$$|\1.ipynb|p' _toc.yml)

.PHONY: help install book test test-unit test-notebooks test-browser lab bench assignments clean

help:
	@echo "make book    build the HTML book (executing every chapter) into _build/html"
	@echo "make test    unit tests, every chapter under nbval, and the browser test of the built book"
	@echo "make lab     open the book in JupyterLab"
	@echo "make bench   run the speed benchmarks (JSON into benchmarks/results/)"
	@echo "make assignments  the student versions of the nbgrader assignments, into _build/assignments/release"
	@echo "make clean   remove the build, caches and the virtual environment"

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $@

install: $(STAMP)

# -W turns every Sphinx warning into an error; --keep-going reports all of them at once. Every
# page is written again (--all, from the execution cache) when references.bib or _ext/ changed: a
# new bibliography key fails on pages whose citations sphinxcontrib-bibtex kept from the last
# build, and Sphinx copies _ext/static (the book's CSS and script) only when it writes a page.
$(HTML): $(STAMP) $(BOOK_SOURCES)
	@if [ ! -f $(RESULTS_STAMP) ] || [ -n "$$(find book/results -name '*.json' -newer $(RESULTS_STAMP))" ]; then \
		rm -rf _build/.jupyter_cache; fi
	$(JB) build . -W -n --keep-going $$([ -f $@ ] && [ -n "$$(find references.bib _ext -type f -newer $@)" ] && echo --all)
	@touch $@ $(RESULTS_STAMP)

book: $(HTML)
	@echo "The book: $(abspath $(HTML))"

test: test-unit test-notebooks test-browser

test-unit: $(STAMP)
	$(PY) -m pytest tests -m "not browser"

# A chapter's hidden assert cells are its checks; --nbval-lax compares no outputs. The chapters
# draw inline whatever MPLBACKEND says (their first cell selects the backend), as in the book.
test-notebooks: $(STAMP)
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider $(CHAPTERS)

# The browser test reads the built book, so the book is brought up to date first.
test-browser: $(HTML)
	$(PY) -m pytest tests -m browser

# The chapters in JupyterLab: jupyterlab-myst renders their MyST (requirements.txt); lab/ adds a
# page_config.json that turns nbgrader's panels off, since a chapter is no assignment (a plain
# `jupyter lab book/assignments` keeps them for making assignments).
lab: $(STAMP)
	JUPYTER_CONFIG_PATH="$(abspath lab)$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" $(VENV)/bin/jupyter lab book/

bench: $(STAMP)
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_search.py --threads 1

# The course directory nbgrader writes to (student versions, submissions, grades, gradebook);
# book/assignments/nbgrader_config.py reads it from FRBOOK_COURSE_DIR. nbgrader runs `alembic`
# from PATH, so the virtual environment's bin/ goes first.
COURSE ?= _build/assignments

assignments: $(STAMP)
	mkdir -p $(COURSE)
	cd book/assignments && FRBOOK_COURSE_DIR="$(abspath $(COURSE))" PATH="$(abspath $(VENV))/bin:$$PATH" \
		$(abspath $(PY)) -m nbgrader generate_assignment "*" --force
	@echo "Student versions: $(abspath $(COURSE))/release"

clean:
	rm -rf _build .pytest_cache $(VENV) frbook.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
