#!/usr/bin/env bash
# Build fastloss with AddressSanitizer + UndefinedBehaviorSanitizer and run
# tests under it.  ANY sanitizer report fails (exit status != 0).
#
# The normal build is never touched: the tracked (and untracked, not
# ignored) files of the repository are copied to a fresh temporary directory,
# built there with the sanitizer flags, installed NON-editable into a
# virtualenv of its own, the copied `fastloss/` package is then deleted, and
# pytest runs from an empty directory -- so the only importable fastloss is
# the sanitized one (checked before the tests run).
#
# Usage:  tools/sanitize.sh [extra pytest arguments]      (or: make sanitize)
#
# Environment (all optional):
#   PYTHON=python3        interpreter the virtualenv is made from
#   SAN_VENV=build/asan-venv   the virtualenv (kept between runs: it caches the
#                         dependencies only; fastloss is rebuilt every run)
#   SAN_TESTS="tests/test_elementwise.py tests/test_classes.py"
#                         test files (repository paths); missing ones are skipped
#   SAN_DESELECT=...      pytest -k expression of tests NOT to run (default:
#                         test_no_memory_growth, see below; "" runs all).
#                         A -k given as an argument replaces it.
#   SAN_FLAGS=...         sanitizer compiler/linker flags
#   SAN_CLONES=0          1: keep the target_clones ISA dispatch
#   SAN_INJECT=cmd        shell command run in the source copy before the build
#                         (tools/sanitize_selftest.sh injects bugs with it)
#   SAN_KEEP=0            1: keep the temporary directory (logs, build)
#   SAN_JOBS=2            parallel compile jobs
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
SAN_VENV="${SAN_VENV:-$ROOT/build/asan-venv}"
case "$SAN_VENV" in /*) ;; *) SAN_VENV="$ROOT/$SAN_VENV" ;; esac
SAN_TESTS="${SAN_TESTS:-tests/test_elementwise.py tests/test_classes.py}"
# Deselected by default: test_no_memory_growth measures the RSS, which ASan's
# quarantine of freed memory makes grow by design (leaks are checked by
# tests/test_leaks.py and tools/valgrind_check.sh instead).  The large-array
# tests stay: they reach the chunked, threaded drivers, concurrent calls and
# the heap-allocated partial sums (> 256 chunks).
SAN_DESELECT="${SAN_DESELECT-test_no_memory_growth}"
# -fno-wrapv: Python's own CFLAGS (which setup.py inherits) carry -fwrapv,
# which defines signed overflow and so switches UBSan's signed-overflow
# checks off; the sanitized build takes it back.  float-cast-overflow (not
# part of "undefined" in gcc): a float outside an integer type's range cast
# to it (labels, indices).  -fno-sanitize-recover=all: the first report aborts.
SAN_FLAGS="${SAN_FLAGS:--fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-wrapv -fno-omit-frame-pointer -g}"
SAN_JOBS="${SAN_JOBS:-2}"

t_start=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastloss-asan.XXXXXX")"
cleanup() {
    if [ "${SAN_KEEP:-0}" = 1 ]; then
        echo "sanitize: work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
SRC="$WORK/src"
LOGS="$WORK/sanitizer-logs"
RUN="$WORK/run"
mkdir -p "$SRC" "$LOGS" "$RUN"

# ---------------------------------------------------------------- runtime
CC="${CC:-gcc}"
LIBASAN="$("$CC" -print-file-name=libasan.so)"
LIBUBSAN="$("$CC" -print-file-name=libubsan.so)"
for lib in "$LIBASAN" "$LIBUBSAN"; do
    if [ ! -e "$lib" ]; then
        echo "sanitize: $CC has no $(basename "$lib") (Debian: apt-get install libasan8 libubsan1)" >&2
        exit 2
    fi
done

# ---------------------------------------------------------------- sources
echo "sanitize: copying the sources to $SRC"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$SRC"
if [ -n "${SAN_INJECT:-}" ]; then
    echo "sanitize: SAN_INJECT: $SAN_INJECT"
    (cd "$SRC" && bash -c "$SAN_INJECT")
fi

# ---------------------------------------------------------------- venv
if [ ! -x "$SAN_VENV/bin/python" ]; then
    echo "sanitize: creating $SAN_VENV"
    "$PYTHON" -m venv "$SAN_VENV"
    "$SAN_VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$SAN_VENV/bin/python"
# the build requirements and the test extra of the copied pyproject.toml
# (a quick no-op when they are installed already)
mapfile -t reqs < <("$PY" -c '
import sys
try:
    import tomllib
    with open(sys.argv[1], "rb") as f:
        cfg = tomllib.load(f)
    reqs = cfg["build-system"]["requires"] + cfg["project"]["optional-dependencies"]["test"]
except Exception:                       # Python < 3.11: the usual set
    reqs = ["setuptools>=77", "Cython>=3", "numpy>=2", "pytest>=7", "hypothesis>=6",
            "threadpoolctl>=3", "psutil>=5"]
print("\n".join(reqs + ["wheel"]))' "$SRC/pyproject.toml")
"$PY" -m pip install -q "${reqs[@]}" 2>&1 | { grep -v "^WARNING: Location" || true; }

# ---------------------------------------------------------------- build
echo "sanitize: building with: $SAN_FLAGS$([ "${SAN_CLONES:-0}" = 1 ] || echo ' (FASTLOSS_NO_CLONES=1)')"
t_build=$(date +%s)
export FASTLOSS_EXTRA_CFLAGS="$SAN_FLAGS"
if [ "${SAN_CLONES:-0}" = 1 ]; then unset FASTLOSS_NO_CLONES; else export FASTLOSS_NO_CLONES=1; fi
# Compile in parallel first; the (non-editable) pip install then finds the
# objects up to date in the copy's build/ and only packs and installs them.
(cd "$SRC" && "$PY" setup.py build_ext -j "$SAN_JOBS" &&
    "$PY" -m pip install --no-build-isolation --no-deps --no-index --force-reinstall -v .
) > "$WORK/build.log" 2>&1 || { tail -n 60 "$WORK/build.log"; echo "sanitize: BUILD FAILED" >&2; exit 1; }
unset FASTLOSS_EXTRA_CFLAGS FASTLOSS_NO_CLONES
rm -rf "$SRC/fastloss"          # only the installed, sanitized copy remains importable
echo "sanitize: build and install took $(( $(date +%s) - t_build )) s"

# ---------------------------------------------------------------- run
# The runtime must be loaded first (python itself is not instrumented).
export LD_PRELOAD="$LIBASAN:$LIBUBSAN${LD_PRELOAD:+:$LD_PRELOAD}"
# detect_leaks=0: CPython does not free everything at exit (leaks are
# checked by tests/test_leaks.py and tools/valgrind_check.sh instead).
# ASan's reports go to files under $LOGS (log_path), so that a report from a
# subprocess whose output a test captured is still seen and fails the run;
# UBSan writes its "runtime error" and stack to stderr and a SUMMARY line to
# its log_path file, which the verdict below finds as well.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=1:print_summary=1:log_path=$LOGS/asan"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1:log_path=$LOGS/ubsan"
# Python objects through malloc, so that ASan sees them too
export PYTHONMALLOC=malloc
export PYTHONFAULTHANDLER=1
unset PYTHONPATH

cd "$RUN"
"$PY" - "$SAN_VENV" <<'EOF'
import sys, os, fastloss
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(fastloss.__file__)
if not where.startswith(venv + os.sep):
    sys.exit(f"sanitize: imported fastloss from {where}, not from {venv}")
from fastloss import _build_info
if "-fsanitize=address" not in _build_info.BUILD_INFO["cflags"]:
    sys.exit("sanitize: the installed fastloss is not built with -fsanitize=address")
print(f"sanitize: fastloss {where}")
print(f"sanitize: cflags {_build_info.BUILD_INFO['cflags']}")
EOF

tests=()
for t in $SAN_TESTS; do
    if [ -e "$SRC/$t" ]; then tests+=("$SRC/$t"); else echo "sanitize: $t not found, skipped"; fi
done
[ ${#tests[@]} -gt 0 ] || { echo "sanitize: no tests to run" >&2; exit 1; }
deselect=()
[ -z "$SAN_DESELECT" ] || deselect=(-k "not ($SAN_DESELECT)")

echo "sanitize: pytest ${tests[*]#$SRC/} ${deselect[*]}"
t_test=$(date +%s)
set +e
# --capture=sys: pytest captures Python's sys.stdout/stderr only, so that a
# report the sanitizer writes to file descriptor 2 just before it aborts the
# process reaches the log instead of dying in pytest's capture file.
"$PY" -m pytest -q -p no:cacheprovider --capture=sys --rootdir="$SRC" -c "$SRC/pyproject.toml" \
    "${deselect[@]}" "$@" "${tests[@]}" 2>&1 | tee "$WORK/pytest.log"
rc=${PIPESTATUS[0]}
set -e
t_end=$(date +%s)

# ---------------------------------------------------------------- verdict
fail=0
if [ "$rc" -ne 0 ]; then
    if [ "$rc" -gt 128 ]; then
        echo "sanitize: pytest was killed by signal $((rc - 128)) (a sanitizer abort?)"
    else
        echo "sanitize: pytest exited with status $rc"
    fi
    fail=1
fi
reports=$(find "$LOGS" -type f -size +0 | sort)
if [ -n "$reports" ]; then
    echo "sanitize: SANITIZER REPORTS:"
    for f in $reports; do echo "==== $f"; cat "$f"; done
    fail=1
fi
if grep -E "runtime error:|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer" "$WORK/pytest.log" >/dev/null; then
    echo "sanitize: sanitizer output in the pytest log:"
    grep -n -E "runtime error:|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer" "$WORK/pytest.log" | head -20
    fail=1
fi
echo "sanitize: tests took $((t_end - t_test)) s; total $((t_end - t_start)) s"
if [ "$fail" -ne 0 ]; then
    echo "sanitize: FAILED"
    exit 1
fi
echo "sanitize: OK (no sanitizer reports)"
