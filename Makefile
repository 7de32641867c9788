# cnnpipe — the two commands a new user needs: `make demo` and `make test`.

VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
# Stage commands call `python`, `dvc` and `cnnpipe`: make them the environment's.
export PATH := $(abspath $(BIN)):$(PATH)

SAMPLE_MIRROR ?= data/sample_mirror
DEMO_EPOCHS   ?= 10
# The sample mirror is small, so MNIST's validation split taken from train is shrunk to fit and
# every model trains for at most DEMO_EPOCHS epochs (smile_cnn, whose loss sits on a plateau
# for its first two to four epochs, takes smaller batches to get past it sooner).
SAMPLE_PARAMS := -S data.mirror=$(SAMPLE_MIRROR) \
                 -S datasets.mnist.valid_first=200 \
                 -S run.max_epochs=$(DEMO_EPOCHS) \
                 -S models.smile_cnn.train.batch_size=16
# Transfer models: no pretrained weights can be downloaded offline, so the demo trains them from
# a randomly initialised backbone (metrics/<model>.json says `backbone_weights: none (random init)`)
# for 2 epochs. That shows the wiring (SPEC input sizes, freezing, Inception's auxiliary loss, the
# same metrics and plots), not what transfer learning achieves; they have no floors.
DEMO_TRANSFER := inception_horses inception_rps inception_cats_dogs squeezenet_horses squeezenet_rps \
                 resnet18_horses resnet18_rps resnet18_sea
SAMPLE_PARAMS += $(foreach m,$(DEMO_TRANSFER),-S models.$(m).arch.weights=none -S models.$(m).train.epochs=2)
SAMPLE_FLOORS := metrics/floors.sample.yaml

# The sources' variant runs, each as named DVC experiments and one table (docs/experiments.md):
# `make compare-sea` is `cnnpipe seeds sea`. SAMPLE=1 adds the demo's SAMPLE_PARAMS (the sample
# mirror, its small validation splits, DEMO_EPOCHS, random-init transfer backbones) to every
# variant; COMPARE_ARGS adds more, e.g. COMPARE_ARGS='-S run.max_epochs=1'.
COMPARE = $(BIN)/cnnpipe seeds $(@:compare-%=%) $(if $(SAMPLE),$(SAMPLE_PARAMS)) $(COMPARE_ARGS)
COMPARISONS := compare-sea compare-horses compare-inception compare-cifar2 compare-fashion compare-mnist

.PHONY: help install demo test lint bench-prepare clean-demo $(COMPARISONS)

help:
	@echo "make demo           set up $(VENV), build the sample mirror, run the pipeline offline"
	@echo "make test           set up $(VENV) and run the test suite"
	@echo "make lint           ruff"
	@echo "make bench-prepare  prepare-speed benchmark (full-size CIFAR-10-shaped sample)"
	@echo "make compare-sea    a source's runs side by side (also -horses -inception -cifar2 -fashion -mnist)"

# NO_INSTALL=1 uses an existing $(VENV) as it is (the pipeline test runs `make demo` that way).
ifeq ($(NO_INSTALL),)
install: $(VENV)/.installed
else
install:
	@test -x $(BIN)/python || { echo "NO_INSTALL is set but $(BIN)/python does not exist" >&2; exit 1; }
endif

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: install
	$(BIN)/cnnpipe sample $(SAMPLE_MIRROR)
	$(BIN)/dvc exp run $(SAMPLE_PARAMS)
	@echo
	$(BIN)/cnnpipe info
	@echo
	$(BIN)/cnnpipe check-metrics --floors $(SAMPLE_FLOORS)
	@echo
	@echo "Prepared arrays: data/prepared/<dataset>/  statistics: data/stats/<dataset>.json"
	@echo "Metrics: metrics/<model>.json  figures: plots/<model>/figures/*.png  (dvc plots show)"
	@echo "Dataset pictures: plots/datasets/<dataset>/*.png  layer tables: cnnpipe summary <model>"
	@echo "The run is recorded as a DVC experiment: dvc exp show"

# The suite runs on TEST_WORKERS processes (pytest-xdist; `auto` is one per core, 0 runs it in
# this process). Each test file stays on one worker, so a module's fixtures (a copied demo
# workspace, a started server) are set up once. pytest exits 5 when it collected no test: treated
# as a failure.
TEST_WORKERS ?= auto
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests ran" >&2; exit 1; fi; exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench-prepare: install
	$(BIN)/python benchmarks/prepare.py

compare-sea: install ; $(COMPARE)
compare-horses: install ; $(COMPARE)
compare-inception: install ; $(COMPARE)
compare-cifar2: install ; $(COMPARE)
compare-fashion: install ; $(COMPARE)
compare-mnist: install ; $(COMPARE)
