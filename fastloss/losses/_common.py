"""Pieces shared by the declarations: domains, samplers, peer helpers."""
import math

import numpy as np

from .._spec import (Domain, NONNEGATIVE, POSITIVE, UNIT, UNIT_OPEN, REAL,  # noqa: F401
                     FINITE_NONNEGATIVE, HINGE_LABELS)

LOG2 = math.log(2.0)
SIGNS = Domain(values=(-1.0, 1.0))


# ---------------------------------------------------------------- samplers
# rng, shape -> float64 array of typical valid values

def normal(scale=1.0, loc=0.0):
    return lambda rng, shape: rng.standard_normal(shape) * scale + loc


def labels01(rng, shape):
    return (rng.random(shape) < 0.5).astype(np.float64)


def signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


# ------------------------------------------------------------- peer helpers

def torch_reduce(x, r):
    """A per-element torch loss reduced as torch's `reduction=` does."""
    return x.mean() if r == "mean" else x.sum() if r == "sum" else x
