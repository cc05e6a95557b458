#!/usr/bin/env bash
# Install a built fastloss wheel into a fresh virtual environment where no
# compiler can be used, and smoke-test it there (tools/wheel_smoke.py).
#
#   tools/wheel_install_test.sh PYTHON VENV WHEEL_DIR [QEMU_CPU]
#
# "No compiler": pip gets --only-binary=:all: (no sdist can be built, for
# fastloss or for NumPy), CC/CXX are /bin/false, and PATH holds only the
# venv's bin directory (checked: no gcc, cc, clang there).  QEMU_CPU (e.g.
# Nehalem, a CPU without AVX): also run the smoke test under
# `qemu-x86_64 -cpu QEMU_CPU`, expecting the SSE2 code path; skipped with a
# notice when qemu-x86_64 is not installed.
set -euo pipefail
PYTHON=${1:?python}; VENV=${2:?venv}; WHEEL_DIR=${3:?wheel dir}; QEMU_CPU=${4:-}
HERE="$(cd "$(dirname "$0")" && pwd)"

shopt -s nullglob
wheels=("$WHEEL_DIR"/fastloss-*-manylinux*_x86_64.whl)
[ ${#wheels[@]} -eq 1 ] || { echo "wheel_install_test: expected one manylinux wheel in $WHEEL_DIR, found ${#wheels[@]}"; exit 1; }
wheel="$(cd "$(dirname "${wheels[0]}")" && pwd)/$(basename "${wheels[0]}")"

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
VENV="$(cd "$VENV" && pwd)"
for tool in gcc cc c++ g++ clang; do
    if PATH="$VENV/bin" command -v "$tool" >/dev/null; then
        echo "wheel_install_test: $tool is reachable on the test PATH"; exit 1
    fi
done
work="$(mktemp -d)"            # run outside any source tree
trap 'rm -rf "$work"' EXIT
cd "$work"
env PATH="$VENV/bin" CC=/bin/false CXX=/bin/false \
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
    "$wheel" numpy
echo "wheel_install_test: installed $(basename "$wheel") into $VENV"
env PATH="$VENV/bin" "$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
    | sed 's/^/    /'
env -u PYTHONPATH PATH="$VENV/bin" "$VENV/bin/python" "$HERE/wheel_smoke.py"

if [ -n "$QEMU_CPU" ]; then
    if qemu="$(command -v qemu-x86_64)"; then
        echo "wheel_install_test: smoke test under qemu-x86_64 -cpu $QEMU_CPU (no AVX)"
        t0=$(date +%s)
        env -u PYTHONPATH PATH="$VENV/bin" "$qemu" -cpu "$QEMU_CPU" \
            "$VENV/bin/python" "$HERE/wheel_smoke.py" --expect-simd sse2
        echo "wheel_install_test: qemu run $(( $(date +%s) - t0 )) s"
    else
        echo "wheel_install_test: NOTICE: qemu-x86_64 not installed (apt-get install qemu-user):" \
             "the run on a CPU without AVX was skipped"
    fi
fi
