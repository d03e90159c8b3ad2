# Two commands on a fresh machine:  `make demo` (offline demo)  and  `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch and torchvision first: CPU-capable builds pinned together (PyPI's torchvision alone mismatches)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[serve,export,explain,test,track,tune]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/imgclf demo

test: install
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist worksteal tests

bench: install
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) imgclf-demo runs .pytest_cache
