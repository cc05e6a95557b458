#!/usr/bin/env bash
# Manual memory check of fastloss's compiled code under valgrind memcheck.
#
# Runs a short script that calls every loss of the table through every
# method (value, grad, value_and_grad, hessian), float32 and float64, every
# reduction, out=, the fast and the generic path (strided inputs, weights,
# axis, parameters, class options) and the error paths, under
#   valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite
# with PYTHONMALLOC=malloc (so Python objects are malloc blocks valgrind sees).
# Then it keeps the reports that involve fastloss's compiled code (a stack
# frame in _core*.so): invalid reads/writes, uses of uninitialised values,
# invalid frees and DEFINITE leaks.  Exit status 1 if there is any.
#
# Usage:  tools/valgrind_check.sh [python]      (or: make valgrind)
#   python: an interpreter that imports the fastloss to check (default:
#   .venv/bin/python if it exists, else python3 with the repository on
#   PYTHONPATH, i.e. an in-place build).
# Environment: VALGRIND_ROUNDS=2 (passes over the workload), VG_LOG=file
# (keep valgrind's full log there), VALGRIND_OPTS (more valgrind options).
# Small arrays and n_threads=1 (and one 2-thread call per loss): it takes a
# few minutes.  target_clones builds work: valgrind emulates no AVX-512 and
# the ifunc resolver picks the AVX2 or baseline clone.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${1:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
    else PY=python3; export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"; fi
fi
# a relative path (make passes .venv/bin/python) made absolute, its last
# component kept as it is: a virtualenv's python is found through its path
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac
command -v valgrind >/dev/null || { echo "valgrind_check: valgrind is not installed (apt-get install -y valgrind)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastloss-valgrind.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOG="${VG_LOG:-$WORK/valgrind.log}"

cat > "$WORK/workload.py" <<'EOF'
import os
import sys
import warnings

import numpy as np

import fastloss as fl
from fastloss._registry import make_inputs
from fastloss._registry import TWO_INPUT as TABLE
from fastloss._registry import TABLE as ALL

warnings.simplefilter("ignore")
rounds = int(os.environ.get("VALGRIND_ROUNDS", "2"))
rng = np.random.default_rng(7)
ok = raised = 0


def call(f, *a, **k):
    global ok
    f(*a, **k)
    ok += 1


def fails(f, *a, **k):
    global raised
    try:
        f(*a, **k)
    except (ValueError, TypeError):
        raised += 1
    else:
        raise AssertionError(f"{f} did not raise with {k}")


SHAPES = {"elementwise": [(1,), (37,), (3, 17)],      # odd sizes: vector tails
          "class": [(1, 3), (7, 5), (4, 60)]}           # 60 > 48: the row path

for _ in range(rounds):
    for spec in TABLE:
        L = fl.losses[spec.name]
        cls = spec.family == "class"
        for dtype in (np.float32, np.float64):
          for shape in SHAPES[spec.family]:
            p, t, kw = make_inputs(spec.name, shape, dtype, rng)
            kw = dict(kw, n_threads=1)
            out = np.empty_like(p)
            for red in ("mean", "sum", "none"):
                for m in (L, L.grad, L.value_and_grad, L.hessian):
                    call(m, p, t, reduction=red, **kw)
            for m in (L.grad, L.value_and_grad, L.hessian):
                call(m, p, t, out=out, **kw)
            call(L.value_and_grad, p.astype(np.float16), t, **kw)
            if cls:
                N, C = shape
                call(L.value_and_grad, np.ascontiguousarray(p.T), t, class_axis=0, **kw)
                call(L.hessian, p, t, sample_weight=np.linspace(0, 1, N),
                     class_weight=np.linspace(1, 2, C), **kw)
                # (N, C, d) layout: strided classes (class_axis=1)
                p3 = np.ascontiguousarray(np.broadcast_to(p[:, :, None], (N, C, 3)))
                call(L.value_and_grad, p3, np.repeat(t[:, None], 3, axis=1), class_axis=1, **kw)
                call(L, p.reshape(N, 1, C), t.reshape(N, 1), axis=0, **kw)
                if spec.accepts_probabilities:
                    e = np.exp(p - p.max(axis=1, keepdims=True))
                    call(L.value_and_grad, p, (e / e.sum(axis=1, keepdims=True)).astype(dtype), **kw)
                    call(L.grad, p, t, ignore_index=1, **kw)
                if "label_smoothing" in spec.param_names:
                    call(L.hessian, p, t, label_smoothing=0.2, **kw)
                big = np.array(t)
                big[-1] = C
                fails(L.value_and_grad, p, big, **kw)
                fails(L, p, t[:0] if N > 1 else t[:0], **kw)
            else:
                call(L.value_and_grad, p[..., ::2], t[..., ::2], **kw)
                call(L.grad, p, t, sample_weight=np.linspace(0, 1, shape[-1]), **kw)
                call(L, np.resize(p, (4, 9)), np.resize(t, (4, 9)), axis=1, **kw)
                for a in spec.array_params:
                    call(L.value_and_grad, p, t, **{a.name: np.full(shape[-1], 2.0)}, **kw)
                for c in spec.checks:
                    bad = np.array(p if c.arg == "y_pred" else t)
                    bad.flat[-1] = -5.0
                    fails(L.grad, *((bad, t) if c.arg == "y_pred" else (p, bad)), **kw)
                fails(L, p, np.ones(5, dtype), **kw)
            fails(L, p, t, reduction="avg", **kw)
            fails(L.grad, p, t, out=np.empty(3, dtype), **kw)
            fails(L, p, t, bogus=1, **kw)
          # several chunks on 2 threads; for cross_entropy also the long-row
          # split and rows longer than 16 segments (heap-allocated state)
          if cls:
              for shape in ((3, 20000), (2000, 3)) + (((1, 140000),) if spec.name == "cross_entropy" else ()):
                  bp, bt, _ = make_inputs(spec.name, shape, dtype, rng)
                  call(L.value_and_grad, bp, bt, n_threads=2)
                  call(L.hessian, bp, bt, n_threads=2)
          else:
              bp, bt, _ = make_inputs(spec.name, (70000,), dtype, rng)
              call(L.value_and_grad, bp, bt, n_threads=2)
# the losses of several inputs and the row family: every method, wrt subset,
# reduction, cotangent, out= tuple, broadcast operand, both thread counts
OTHER = [s for s in ALL if s not in TABLE]
for spec in OTHER:
    L = fl.losses[spec.name]
    diff = spec.differentiable
    for dtype in (np.float32, np.float64):
        for shape in ((1, 1), (3, 17), (7, 33)):
            *xs, kw = make_inputs(spec.name, shape, dtype, rng)
            kw = dict(kw, n_threads=1)
            for red in spec.reductions:
                call(L, *xs, reduction=red, **kw)
                call(L.value_and_grad, *xs, reduction=red, wrt=diff, **kw)
                if spec.has_hessian:
                    call(L.grad_and_hessian, *xs, reduction=red, **kw)
            for w in diff:
                call(L.grad, *xs, wrt=w, **kw)
            v = L(*xs, reduction="none", **kw)
            call(L.value_and_grad, *xs, reduction="none", cotangent=np.ones(np.shape(v)), **kw)
            call(L.grad, *xs, cotangent=2.0, sample_weight=np.linspace(0, 1, np.shape(v)[-1]), **kw)
            call(L.grad, *xs, axis=0, **kw)
            outs = tuple(np.empty_like(xs[spec.inputs.index(w)]) for w in diff)
            call(L.grad, *xs, wrt=diff, out=outs, **kw)
            # a broadcast second operand: its gradient is summed to its shape
            xb = list(xs)
            xb[1] = xs[1][:1]
            call(L.value_and_grad, *xb, wrt=diff, **kw)
            fails(L, *xs, reduction="avg", **kw)
            fails(L.grad, *xs, wrt="nope", **kw)
            fails(L.grad, *xs, wrt=diff, out=np.empty(3, dtype), **kw)
            for c in spec.checks:
                bad = [np.array(x) for x in xs]
                bad[spec.inputs.index(c.arg)].flat[-1] = 0.5 if c.domain.values else -5.0
                fails(L.grad, *bad, **kw)
        *xs, kw = make_inputs(spec.name, (4000, 37) if spec.family == "rows" else (70000,),
                              dtype, rng)
        call(L.value_and_grad, *xs, n_threads=2)
print(f"valgrind workload: {ok} calls, {raised} raised as expected, "
      f"{len(ALL)} losses, fastloss {fl.__file__}")
EOF

cd "$WORK"          # not the repository: its fastloss/ must not shadow the one to check
# the interpreter itself, not a wrapper script (pyenv shims are shell scripts
# and valgrind would check the shell)
PY="$("$PY" -c 'import sys; print(sys.executable)')"
echo "valgrind_check: $PY, fastloss $("$PY" -c 'import fastloss; print(fastloss.__file__)')"
t0=$(date +%s)
set +e
PYTHONMALLOC=malloc valgrind --tool=memcheck --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --num-callers=40 --error-limit=no --log-file="$LOG" ${VALGRIND_OPTS:-} \
    "$PY" "$WORK/workload.py"
rc=$?
set -e
echo "valgrind_check: valgrind took $(( $(date +%s) - t0 )) s (python exit status $rc)"

# Split the log into reports (blank-line separated) and keep those with a
# frame in fastloss's extension module.
"$PY" - "$LOG" <<'EOF'
import re
import sys

text = open(sys.argv[1], errors="replace").read()
lines = [re.sub(r"^==\d+== ?", "", l) for l in text.splitlines()]
blocks, cur = [], []
for l in lines:
    if l.strip():
        cur.append(l)
    elif cur:
        blocks.append(cur)
        cur = []
if cur:
    blocks.append(cur)

kinds = {
    "invalid read": r"^Invalid read",
    "invalid write": r"^Invalid write",
    "uninitialised value": r"(uninitialised|Uninitialised)",
    "invalid free": r"^(Invalid free|Mismatched free)",
    "overlap": r"^Source and destination overlap",
    "definite leak": r"are definitely lost",
}
# a frame in fastloss's extension module: its file, or its sources (built -g)
OURS = re.compile(r"fastloss/_core[^/ ]*\.so|\((_core\.c|ew_template\.h|ew_kernels\.h|"
                  r"class_template\.h|elementwise\.c|classwise\.c|runtime\.c|vmath\.h|"
                  r"fl_internal\.h|fastloss\.h):\d+\)")
ours = {k: [] for k in kinds}
allc = {k: 0 for k in kinds}
for b in blocks:
    head = b[0]
    for k, rx in kinds.items():
        if re.search(rx, head):
            allc[k] += 1
            if any(OURS.search(l) for l in b):
                ours[k].append(b)
            break

summary = [l for l in lines if re.match(r"(ERROR SUMMARY|   definitely lost|   indirectly lost|"
                                       r"   possibly lost|   still reachable|     suppressed|"
                                       r"  total heap usage)", l)]
print("valgrind_check: valgrind's summary:")
for l in summary:
    print("    " + l.strip())
print("valgrind_check: reports by kind (all / with a frame in fastloss's _core*.so):")
for k in kinds:
    print(f"    {k:22s} {allc[k]:5d} / {len(ours[k])}")
n = sum(len(v) for v in ours.values())
for k, bs in ours.items():
    for b in bs[:5]:
        print(f"---- {k}:")
        print("\n".join(b[:25]))
if n:
    print(f"valgrind_check: FAILED: {n} report(s) involve fastloss")
    sys.exit(1)
print("valgrind_check: OK: no invalid access, uninitialised use or definite leak in fastloss")
EOF
if [ "$rc" -ne 0 ]; then
    echo "valgrind_check: the workload failed (exit status $rc); the end of the log:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
fi
