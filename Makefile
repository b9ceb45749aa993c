# Two commands do all set-up on a fresh machine:
#   make demo   installs ganforge and runs a GAN training job on the embedded service
#   make test   installs ganforge with its test tools and runs every test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch that lies on the lab's CI machines; GPU nodes bring their own newer
# CUDA build and the package accepts it (pyproject: torch>=2.4).
TORCH_SPEC ?= torch==2.13.0
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

.PHONY: install browser demo up test test-fast test-quality lint check bench clean gpu-check

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(FIND_LINKS) "$(TORCH_SPEC)"
	$(PY) -m pip install -q $(FIND_LINKS) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ganforge demo

up: install
	$(VENV)/bin/ganforge up

# On a machine with an NVIDIA GPU, in under 8 minutes: devices, step throughput of the 64 and
# 128 px models in fp32 / bf16 / fp16, warm sampling and a 2-rank NCCL run, as one JSON
# (bench-gpu.json). Without CUDA it only reports the devices it found (bench/gpu_check.py;
# `--cpu-smoke` exercises every section on the CPU).
gpu-check: install
	$(PY) -m bench.gpu_check --json bench-gpu.json

# The dashboard's browser test (tests/e2e/test_dashboard.py) drives Debian's chromium through
# its chromedriver. Installed here when missing and apt-get can (root, or sudo without a
# password); otherwise that test fails, naming what to install.
CHROMIUM_PACKAGES := chromium chromium-driver
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "make: no apt-get; install Chromium and chromedriver for the dashboard test"; exit 0; fi; \
	echo "make: installing $(CHROMIUM_PACKAGES) for the dashboard test"; \
	export DEBIAN_FRONTEND=noninteractive; \
	{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(CHROMIUM_PACKAGES) >/dev/null; } \
		|| echo "make: could not install $(CHROMIUM_PACKAGES); the dashboard test will fail"

# Every suite but the quality-sized runs (`make test-quality`). The tests start their own
# PostgreSQL (initdb + postgres), redis-server and moto S3 servers; see README "Tests" for the
# binaries they need. Three lanes at once, each its own pytest with its own servers: the service
# suites; beside them the fault scenarios, which mostly wait out their 30 s outages; and the
# unit suite with the embedded service's end-to-end tests (no servers, one torch thread). The
# service lane prints as it goes, the other two after it; any lane failing fails the target.
test: install browser
	@unit_log=$$(mktemp); fault_log=$$(mktemp); \
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -q -m "unit or no_servers" tests/unit tests/e2e \
		>$$unit_log 2>&1 & unit=$$!; \
	$(VENV)/bin/pytest -q -m "not quality" tests/resilience >$$fault_log 2>&1 & faults=$$!; \
	$(VENV)/bin/pytest -q -m "not quality and not no_servers" \
		tests/integration tests/e2e tests/soak; \
	services=$$?; wait $$faults; fault_status=$$?; wait $$unit; units=$$?; \
	echo "== fault scenarios, run beside them (exit status $$fault_status) =="; \
	cat $$fault_log; \
	echo "== unit and embedded-service tests, run beside them (exit status $$units) =="; \
	cat $$unit_log; rm -f $$unit_log $$fault_log; \
	exit $$(( services || units || fault_status ))

# The unit suite without the tests that start processes or train for seconds: the inner loop,
# under a minute on two cores.
test-fast: install
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -q -n 2 -m "unit and not processes and not slow" tests/unit

# Training runs sized to show quality through the whole service (minutes each). CI runs them
# after `make test`; `python -m bench.quality` proves the same claims over 3 seeds.
test-quality: install
	$(VENV)/bin/pytest -q -m "quality"

# Lint, types and the suites that need no service: the inner loop.
check: install lint test-fast

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Every benchmark against its bare tool (each starts its own servers; about 15 minutes on 2
# cores, and 5-10 more for the reporting case), then the README's table between the bench
# markers, rewritten from their JSON.
bench: install
	$(PY) -m bench.train_overhead --json bench-train_overhead.json
	$(PY) -m bench.train_overhead --case reporting --json bench-train_reporting.json
	$(PY) -m bench.scheduler --json bench-scheduler.json
	$(PY) -m bench.api --json bench-api.json
	$(PY) -m bench.queue --json bench-queue.json
	$(PY) -m bench.storage --json bench-storage.json
	$(PY) -m bench.db_scale --json bench-db_scale.json
	$(PY) -m bench.streams --json bench-streams.json
	$(if $(wildcard bench/sampling.py),$(PY) -m bench.sampling --json bench-sampling.json)
	$(PY) -m bench.report

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
