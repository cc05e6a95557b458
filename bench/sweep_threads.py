"""Measure where a second thread starts to pay, per kind of kernel.

    python bench/sweep_threads.py [--json FILE] [--quick]

fastloss uses fewer threads than asked when a call has less than
``min_per_thread`` elements of work per thread (three values: memory-bound
elementwise kernels, transcendental elementwise kernels, class losses; see
``fastloss._core.thread_thresholds``).  This script switches the limits off
(1 element per thread), then for each size times the call on 1 and on 2
threads, interleaved, and reports the median speedup.  The recommended
threshold of a kind is half the smallest size from which 2 threads are at
least ``--gain`` (default 1.15x) faster at that size and every larger one, the
largest over the kind's losses.  Run it on a quiet machine: a busy second
core makes every second thread look useless.
"""
import argparse
import json
import sys
import time

import numpy as np

import fastloss as fl
from fastloss import _core
from fastloss._registry import make_inputs

KINDS = {
    # kind: (losses, sizes in elements)
    "light": (["mse", "huber", "quantile"], [2 ** k for k in range(14, 23)]),
    "heavy": (["log_cosh", "binary_cross_entropy_with_logits", "sigmoid_focal", "poisson"],
              [2 ** k for k in range(10, 21)]),
    "class": (["cross_entropy:1000", "cross_entropy:10", "cross_entropy:32000"],
              [2 ** k for k in range(12, 23)]),
}


def timed(f, min_time):
    f()
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        t = time.perf_counter() - t0
        if t >= min_time:
            return t / n
        n *= 2


def case(name, size, rng):
    if ":" in name:
        loss, C = name.split(":")
        C = int(C)
        N = max(1, size // C)
        shape = (N, C)
    else:
        loss, shape = name, (size,)
    p, t, kw = make_inputs(loss, shape, np.dtype(np.float32), rng)
    return fl.get(loss), p, t, kw, int(np.prod(shape))


def sweep(kind, repeats, min_time, gain):
    losses, sizes = KINDS[kind]
    rng = np.random.default_rng(0)
    rows, start = [], {}
    for name in losses:
        speed = []
        for size in sizes:
            if ":" in name and size < int(name.split(":")[1]):
                continue                     # fewer elements than one row
            L, p, t, kw, n = case(name, size, rng)
            g = np.empty_like(p)
            t1, t2 = [], []
            for _ in range(repeats):         # interleaved: drifts hit both alike
                t1.append(timed(lambda: L.value_and_grad(p, t, out=g, n_threads=1, **kw),
                                min_time))
                t2.append(timed(lambda: L.value_and_grad(p, t, out=g, n_threads=2, **kw),
                                min_time))
            s = float(np.median(t1) / np.median(t2))
            speed.append((n, s))
            rows.append({"kind": kind, "loss": name, "elements": n,
                         "t1": float(np.median(t1)), "t2": float(np.median(t2)), "speedup": s})
            print(f"{kind:5} {name:34} n={n:>9}  1 thread {np.median(t1) * 1e6:9.1f} us  "
                  f"2 threads {np.median(t2) * 1e6:9.1f} us  x{s:.2f}", flush=True)
        # the smallest size from which every larger size gains
        first = None
        for i in range(len(speed)):
            if all(sp >= gain for _, sp in speed[i:]):
                first = speed[i][0]
                break
        start[name] = first
    found = [v for v in start.values() if v is not None]
    per_thread = max(found) // 2 if found else None
    return rows, start, per_thread


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the measurements here")
    ap.add_argument("--quick", action="store_true", help="3 repeats of 2 ms batches")
    ap.add_argument("--gain", type=float, default=1.15)
    ap.add_argument("--kinds", default="light,heavy,class")
    args = ap.parse_args(argv)
    repeats, min_time = (3, 0.002) if args.quick else (7, 0.005)
    old = _core.thread_thresholds(1, 1, 1)
    try:
        out = {"machine": fl.show_config(print_=False), "gain": args.gain, "rows": [],
               "recommended": {}}
        for kind in args.kinds.split(","):
            rows, start, per_thread = sweep(kind, repeats, min_time, args.gain)
            out["rows"] += rows
            out["recommended"][kind] = per_thread
            print(f"-> {kind}: 2 threads gain >= {args.gain}x from {start}; "
                  f"min per thread {per_thread} (current {old[['light', 'heavy', 'class'].index(kind)]})",
                  flush=True)
    finally:
        _core.thread_thresholds(*old)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
