# The two commands of README.md: `make demo` and `make test`. Each installs what is missing first.
SHELL := /bin/bash
VENV ?= $(HOME)/.cache/nic/venv
export NIC_VENV := $(VENV)
export NIC_TEST_DATA ?= $(HOME)/.cache/nic/data
SWIFT ?= swift
TESTKIT = .build/debug/nic-testkit

.PHONY: demo test test-fresh deps build interop interop-geojson parity parity-fixtures report-check slurm-check fuzz clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build -c release --product nic

# The NIC demo: a synthetic cohort (60 patients, written once to data/demo), then the pipeline
# (encoders → compression → patient models → metrics with CIs → HTML report).
demo: build
	@test -f data/demo/labels.csv || .build/release/nic synth --out data/demo --patients 60 --size 3072 --seed 1
	.build/release/nic run pipelines/demo.yaml
	@echo
	@echo "Results (out-of-fold, 95% bootstrap CIs); oracle = best achievable from the true latents:"
	@.build/release/nic metrics pipelines/demo.yaml
	@cat data/demo/oracle.json; echo

test:
	@scripts/deps.sh --python
	@scripts/fetch-test-data.sh
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	@FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) scripts/fuzz.sh
	@$(MAKE) --no-print-directory interop
	@$(MAKE) --no-print-directory report-check
	@$(MAKE) --no-print-directory slurm-check

# `make test` as a new user's machine runs it: a clean clone of HEAD, with HOME, the caches, the venv
# and the test data in an empty temporary folder (scripts/test-fresh.sh says what it cannot reset).
test-fresh:
	scripts/test-fresh.sh

# The Slurm executor on a one-node Slurm started on this machine (scripts/slurm-local.sh; root): the
# same keys, bytes and metrics as the local executor, a rerun submits nothing, failed and cancelled
# jobs are reported with their ids and logs, a stopped driver cancels its jobs, a killed driver's jobs
# are adopted, two drivers on one cache compute every key once (nic-testkit's toy nodes count it).
slurm-check:
	$(SWIFT) build --product nic
	$(SWIFT) build --product nic-testkit
	scripts/slurm-check.sh

# libFuzzer on the spec parser, the CSV reader, zarr metadata + chunk decoding and the safetensors
# reader (Tests/Fuzz, seed corpora committed there): FUZZ_SECONDS each (`make test` runs each for
# FUZZ_SMOKE_SECONDS). Needs only the Swift toolchain (it ships libFuzzer and the sanitizers).
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

# zarr arrays written by nic are read by zarr-python, and the other way round.
interop:
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(TESTKIT) zarr-fixtures "$$dir/nic" && \
	$(VENV)/bin/python scripts/zarr_interop.py check "$$dir/nic" && \
	$(VENV)/bin/python scripts/zarr_interop.py write "$$dir/python" && \
	$(TESTKIT) zarr-check "$$dir/python"
	@$(MAKE) --no-print-directory interop-geojson

# TRIDENT-layout feature files written by h5py → the `features` node → `nic export geojson` → checked
# with python-geojson and shapely against the .h5 files (tiles on their patches, codes as measurements).
interop-geojson:
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(VENV)/bin/python scripts/features_fixture.py "$$dir/h5" >/dev/null && \
	printf 'pipeline: interop-features\nnodes:\n  grids: {type: features, params: {dir: %s, labels: %s/labels.csv}}\n' \
		"$$dir/h5/trident" "$$dir/h5/trident" > "$$dir/pipeline.yaml" && \
	.build/debug/nic run "$$dir/pipeline.yaml" --cache "$$dir/cache" --runs "$$dir/runs" --quiet && \
	.build/debug/nic export geojson "$$dir/pipeline.yaml" grids --cache "$$dir/cache" --out "$$dir/geojson" --clusters 4 && \
	$(VENV)/bin/python scripts/geojson_check.py "$$dir/geojson" "$$dir/h5/trident"

# The neural core and the bag (MIL) models against a live PyTorch (installed into the venv from PyPI,
# several GB): outputs, attention and one training step's gradients from the weights nic saved.
# `make test` needs no PyTorch: ParityFixtureTests checks nic against PyTorch's outputs stored in
# Tests/NeuralTests/Fixtures/parity, which `make parity-fixtures` writes anew (after an architecture
# under nodes/ or the neural core changes; the test names a stale fixture).
PARITY_FIXTURES = Tests/NeuralTests/Fixtures/parity
parity:
	@scripts/deps.sh --torch
	$(SWIFT) build -c release --product nic
	$(VENV)/bin/python scripts/parity_mil.py --nic .build/release/nic
	$(VENV)/bin/python scripts/parity_neural.py --nic .build/release/nic

parity-fixtures:
	@scripts/deps.sh --torch
	$(SWIFT) build -c release --product nic
	rm -f $(PARITY_FIXTURES)/*.json $(PARITY_FIXTURES)/*.safetensors
	$(VENV)/bin/python scripts/parity_mil.py --nic .build/release/nic --write-fixtures $(PARITY_FIXTURES)
	$(VENV)/bin/python scripts/parity_neural.py --nic .build/release/nic --write-fixtures $(PARITY_FIXTURES)

# NIC end to end on a tiny synthetic cohort (release build: training in a debug build is ~20× slower),
# checks that the multi-task encoder beats mean-RGB, then opens the run's HTML report in headless
# Chromium; the screenshot stays in the run folder (runs/<time>-nic-tiny/report.png).
report-check:
	$(SWIFT) build -c release --product nic
	@test -f data/tiny/labels.csv || .build/release/nic synth --out data/tiny --patients 32 --size 2048 --seed 7
	.build/release/nic run pipelines/nic-tiny.yaml --progress-interval 30
	.build/release/nic metrics pipelines/nic-tiny.yaml --csv > data/tiny/metrics.csv
	$(VENV)/bin/python scripts/demo_check.py data/tiny/metrics.csv "$$(.build/release/nic output pipelines/nic-tiny.yaml mtl model)/model.json"
	$(VENV)/bin/python scripts/report_browser_check.py "$$(ls -d runs/*-nic-tiny | tail -1)/report.html" --max-mb 2
	@test -f data/tiny-external/labels.csv || .build/release/nic synth --out data/tiny-external --patients 12 --size 2048 --seed 8 --site hospital-b
	.build/release/nic run pipelines/external-tiny.yaml --progress-interval 30
	$(VENV)/bin/python scripts/external-table.py pipelines/external-tiny.yaml --require-complete
	.build/debug/nic run pipelines/engine-tour.yaml --quiet
	$(VENV)/bin/python scripts/report_browser_check.py "$$(ls -d runs/*-engine-tour | tail -1)/report.html" --expect dag nodes metrics plots

clean:
	rm -rf .build .nic
