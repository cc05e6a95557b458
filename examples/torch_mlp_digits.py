"""An MLP on scikit-learn's bundled digits, trained in PyTorch through
fastloss.torch.CrossEntropyLoss (forward: one fused value-and-gradient
kernel call; backward: the saved gradient).  Without scikit-learn, a small
synthetic set.  Runs in a few seconds on a CPU.

    python examples/torch_mlp_digits.py
"""
import time

import numpy as np
import torch

import fastloss.torch as flt


def data(rng):
    try:
        from sklearn.datasets import load_digits
        d = load_digits()
        x, y = d.data.astype(np.float32) / 16.0, d.target.astype(np.int64)
    except ImportError:                     # synthetic: 10 Gaussian blobs in 64-D
        centers = rng.standard_normal((10, 64)).astype(np.float32)
        y = rng.integers(0, 10, 1800)
        x = centers[y] + 0.8 * rng.standard_normal((1800, 64)).astype(np.float32)
    idx = rng.permutation(len(y))
    x, y = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
    n = int(0.8 * len(y))
    return x[:n], y[:n], x[n:], y[n:]


def main(epochs=20, seed=0):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = data(rng)
    model = torch.nn.Sequential(torch.nn.Linear(xtr.shape[1], 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    crit = flt.CrossEntropyLoss(label_smoothing=0.05)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(len(ytr))
        for i in range(0, len(ytr), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            loss = crit(model(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
        if epoch % 5 == 4:
            print(f"epoch {epoch + 1:3d}  train loss {loss.item():.4f}")
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    print(f"test accuracy {acc:.3f}  ({time.perf_counter() - t0:.1f} s)")
    return acc


if __name__ == "__main__":
    main()
