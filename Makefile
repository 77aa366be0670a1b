# The two commands of README.md: `make demo` and `make test`. Each installs what is missing first.
SHELL := /bin/bash
VENV ?= $(HOME)/.cache/nic/venv
export NIC_VENV := $(VENV)
export NIC_TEST_DATA ?= $(HOME)/.cache/nic/data
SWIFT ?= swift
TESTKIT = .build/debug/nic-testkit

.PHONY: demo test deps build interop report-check clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build -c release --product nic

demo: build
	.build/release/nic run pipelines/demo.yaml
	@echo
	@echo "Rerun (nothing executes):"
	.build/release/nic run pipelines/demo.yaml --quiet
	@echo
	@echo "survival predictions judged (C-index with 95% bootstrap CI, log-rank p):"
	@cat "$$(.build/release/nic output pipelines/demo.yaml survival)/metrics.csv"

test:
	@scripts/deps.sh --python
	@scripts/fetch-test-data.sh
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	@$(MAKE) --no-print-directory interop
	@$(MAKE) --no-print-directory report-check

# zarr arrays written by nic are read by zarr-python, and the other way round.
interop:
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(TESTKIT) zarr-fixtures "$$dir/nic" && \
	$(VENV)/bin/python scripts/zarr_interop.py check "$$dir/nic" && \
	$(VENV)/bin/python scripts/zarr_interop.py write "$$dir/python" && \
	$(TESTKIT) zarr-check "$$dir/python"

# The demo pipeline's HTML report opened in headless Chromium; the screenshot stays in its run folder.
report-check:
	.build/debug/nic run pipelines/demo.yaml --quiet
	$(VENV)/bin/python scripts/report_browser_check.py "$$(ls -d runs/*-demo | tail -1)/report.html" --expect dag nodes metrics plots

clean:
	rm -rf .build .nic
