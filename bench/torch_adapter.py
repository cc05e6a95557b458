"""fastloss.torch against torch.nn.functional, forward + backward, one
thread, float32 (issue 12's targets).  Interleaved rounds, medians.

    python bench/torch_adapter.py [--rounds 7]

Rows: cross_entropy at (8192, 1000) and (64, 32000) (target: >= 2x torch),
mse at 1e7 (target: >= 4x torch), and the overhead of fastloss.torch over
the bare NumPy call fl.cross_entropy.value_and_grad at (256, 10) (target:
< 15 us), with a no-op autograd.Function's forward + backward as the floor
that torch's autograd engine sets.
"""
import argparse
import time

import numpy as np
import torch

import fastloss as fl
import fastloss.torch as flt

F = torch.nn.functional


def timer(f, min_time=0.2, max_n=2000):
    """Median seconds per call of f over a batch of calls lasting ~min_time."""
    f()
    t0 = time.perf_counter()
    f()
    one = max(time.perf_counter() - t0, 1e-7)
    n = int(min(max_n, max(3, min_time / one)))
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


class _Noop(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        g = torch.ones_like(x)
        ctx.save_for_backward(g)
        ctx.mark_non_differentiable(g)
        return x.new_zeros(()), g

    @staticmethod
    def backward(ctx, gv, _):
        g, = ctx.saved_tensors
        return g * gv


def cases():
    rng = np.random.default_rng(0)
    out = []
    for shape in ((8192, 1000), (64, 32000)):
        z = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * 3)
        y = torch.from_numpy(rng.integers(0, shape[1], shape[0]))
        za, zb = z.clone().requires_grad_(), z.clone().requires_grad_()

        def ours(za=za, y=y):
            za.grad = None
            flt.cross_entropy(za, y).backward()

        def theirs(zb=zb, y=y):
            zb.grad = None
            F.cross_entropy(zb, y).backward()
        out.append((f"cross_entropy {shape}", ours, theirs, 2.0))
    n = 10 ** 7
    p = torch.from_numpy(rng.standard_normal(n, dtype=np.float32))
    t = torch.from_numpy(rng.standard_normal(n, dtype=np.float32))
    pa, pb = p.clone().requires_grad_(), p.clone().requires_grad_()

    def ours_mse():
        pa.grad = None
        flt.mse(pa, t).backward()

    def theirs_mse():
        pb.grad = None
        F.mse_loss(pb, t).backward()
    out.append(("mse 1e7", ours_mse, theirs_mse, 4.0))
    return out


def overhead(rounds):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((256, 10), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    zt, yt = torch.from_numpy(z).requires_grad_(), torch.from_numpy(y)
    x = torch.randn(256, 10, requires_grad=True)

    def bare():
        fl.cross_entropy.value_and_grad(z, y)

    def fwd():
        flt.cross_entropy(zt, yt)

    def fwd_bwd():
        zt.grad = None
        flt.cross_entropy(zt, yt).backward()

    def torch_fb():
        zt.grad = None
        F.cross_entropy(zt, yt).backward()

    def noop():
        x.grad = None
        _Noop.apply(x)[0].backward()
    fs = dict(bare=bare, forward=fwd, forward_backward=fwd_bwd, torch_fb=torch_fb,
              noop_function_fb=noop)
    res = {k: [] for k in fs}
    for _ in range(rounds):
        for k, f in fs.items():
            res[k].append(timer(f, 0.1))
    return {k: float(np.median(v)) * 1e6 for k, v in res.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    torch.set_num_threads(1)
    fl.set_num_threads(1)
    print(f"torch {torch.__version__}, fastloss {fl.__version__}, one thread, float32, "
          f"{a.rounds} interleaved rounds, medians")
    for name, ours, theirs, target in cases():
        r_o, r_t = [], []
        for _ in range(a.rounds):
            r_o.append(timer(ours))
            r_t.append(timer(theirs))
        o, t = np.median(r_o) * 1e3, np.median(r_t) * 1e3
        print(f"{name:28s} fastloss.torch {o:9.3f} ms   torch {t:9.3f} ms   "
              f"speedup {t / o:5.2f}x (target >= {target:g}x)")
    ov = overhead(a.rounds)
    print("(256, 10) cross_entropy, us per call: " + ", ".join(f"{k} {v:.1f}"
                                                              for k, v in ov.items()))
    print(f"overhead over the bare NumPy call: forward {ov['forward'] - ov['bare']:.1f} us, "
          f"forward+backward {ov['forward_backward'] - ov['bare']:.1f} us (target < 15 us); "
          f"torch's engine floor (no-op Function f+b) {ov['noop_function_fb']:.1f} us")


if __name__ == "__main__":
    main()
