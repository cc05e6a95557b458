"""Smoke test of an installed fastloss wheel (run by `make wheel` in a fresh
virtual environment that has the wheel and NumPy only).

    python tools/wheel_smoke.py            # exit status 0: the wheel works
    python tools/wheel_smoke.py --expect-simd sse2   # and that SIMD level is chosen

Checks, each failing loudly:
  * fastloss is imported from the environment's site-packages (not from a
    source tree) and show_config() reports OpenMP;
  * the OpenMP runtime mapped into the process is the libgomp vendored by
    auditwheel (fastloss.libs/libgomp-<hash>.so), and it is the only one;
  * losses of each family (elementwise, class, rows) agree with their
    pure-NumPy reference (fl.<loss>.reference) in float64 at 2 threads,
    value and gradient, on arrays large enough to be split among threads.

Tolerance: fastloss and the reference both compute in float64; they differ
only by the order of the sums (blocked per thread vs NumPy's pairwise) and by
fastloss's vectorized exp/log (within a few ULP, tests/test_vmath.py).  Both
give relative differences of ~1e-15; rtol = 1e-10 leaves a wide margin for
that and still fails for any wrong kernel or a mis-dispatched ISA path, whose
errors are of order 1.
"""
import os
import sys

import numpy as np

RTOL = 1e-10
THREADS = 2

# (loss, shape of the first input): every family, the hot kernels of each
CASES = [
    ("mse", (200_003,)),
    ("huber", (200_003,)),
    ("binary_cross_entropy_with_logits", (200_003,)),
    ("poisson", (200_003,)),
    ("hinge", (200_003,)),
    ("gaussian_nll", (100_001,)),
    ("cross_entropy", (4099, 10)),
    ("cross_entropy", (257, 1000)),
    ("nll", (4099, 10)),
    ("multi_margin", (2049, 16)),
    ("cosine_embedding", (1025, 64)),
    ("triplet_margin", (1025, 64)),
]


def fail(msg):
    print(f"wheel_smoke: FAIL: {msg}")
    sys.exit(1)


def mapped_openmp_runtimes():
    """Paths of the OpenMP runtimes mapped into this process."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if name.startswith(("libgomp", "libomp", "libiomp")):
                libs.add(path)
    return sorted(libs)


def check_close(name, shape, what, got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        fail(f"{name} {shape} {what}: shape {got.shape} != reference {want.shape}")
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(got - want), initial=0.0))
    if not np.isfinite(got).all() or err > RTOL * scale:
        fail(f"{name} {shape} {what}: max |fastloss - reference| = {err:.3g} "
             f"> {RTOL:g} * {scale:.3g}")
    return err / scale


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="smoke test of an installed fastloss wheel")
    ap.add_argument("--expect-simd", metavar="TEXT",
                    help="fail unless show_config()['simd'] contains TEXT (e.g. SSE2 under "
                         "an emulated CPU without AVX)")
    args = ap.parse_args(argv)
    import fastloss as fl
    from fastloss._registry import make_inputs

    where = os.path.realpath(fl.__file__)
    prefix = os.path.realpath(sys.prefix)
    print(f"wheel_smoke: fastloss {fl.__version__} from {where}")
    if not where.startswith(prefix + os.sep):
        fail(f"fastloss was not imported from this environment ({prefix})")

    cfg = fl.show_config()
    if not cfg["openmp"]:
        fail("show_config() says the wheel has no OpenMP")

    if args.expect_simd and args.expect_simd not in cfg["simd"]:
        fail(f"SIMD level {cfg['simd']!r}, expected {args.expect_simd!r}")

    runtimes = mapped_openmp_runtimes()
    print(f"wheel_smoke: OpenMP runtimes mapped: {runtimes}")
    vendored = os.path.join(os.path.dirname(os.path.dirname(where)), "fastloss.libs")
    if len(runtimes) != 1 or not os.path.realpath(runtimes[0]).startswith(vendored + os.sep):
        fail(f"expected exactly one OpenMP runtime, the vendored one in {vendored}/, "
             f"got {runtimes}")

    rng = np.random.default_rng(20261202)
    worst = 0.0
    for name, shape in CASES:
        *inputs, kw = make_inputs(name, shape, np.float64, rng)
        loss = fl.losses[name]
        v, g = loss.value_and_grad(*inputs, n_threads=THREADS, **kw)
        rv, rg = loss.reference.value_and_grad(*inputs, **kw)
        worst = max(worst, check_close(name, shape, "value", v, rv))
        g, rg = (g, rg) if isinstance(g, tuple) else ((g,), (rg,))
        for i, (a, b) in enumerate(zip(g, rg)):
            worst = max(worst, check_close(name, shape, f"gradient {i}", a, b))
        v1 = loss(*inputs, n_threads=1, **kw)
        worst = max(worst, check_close(name, shape, "value at 1 thread", v1, rv))
        print(f"wheel_smoke: ok {name} {'x'.join(map(str, shape))}")
    print(f"wheel_smoke: PASS: {len(CASES)} cases, largest relative difference "
          f"{worst:.2g} (limit {RTOL:g}), SIMD {cfg['simd']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
