"""Row losses (SPEC section 8): vectors along the last axis; the leading
axes are samples.  One C driver serves the family (src_c/rows.c); the
parameters fill the kernel's slots in the order declared here."""
from .. import _reference_rows as RR
from .._spec import DataCheck, Domain, LossSpec, Operand, Param, REAL
from ._common import NONNEGATIVE, POSITIVE, SIGNS, normal, signs




# ------------------------------------------------- idiomatic NumPy (bench "numpy")
# What a user writes in a few lines (value = the mean, gradient with respect
# to each vector input; vectors on the last axis; _spec.LossSpec.peers["numpy"]).  N is numpy.

def _np_cosine_embedding(N, x1, x2, y, k, grad=True):
    n1 = (x1 * x1).sum(axis=-1) + 1e-12
    n2 = (x2 * x2).sum(axis=-1) + 1e-12
    s = N.sqrt(n1 * n2)
    cos = (x1 * x2).sum(axis=-1) / s
    v = N.mean(N.where(y == 1, 1 - cos, N.maximum(0, cos - k["margin"])))
    if not grad:
        return v
    dc = (N.where(y == 1, -1.0, (cos > k["margin"]) * 1.0) / cos.size)[..., None]
    return v, (dc * (x2 / s[..., None] - cos[..., None] * x1 / n1[..., None]),
               dc * (x1 / s[..., None] - cos[..., None] * x2 / n2[..., None]))


def _np_triplet_margin(N, a, p, n, k, grad=True):
    q, eps = k["p"], k["eps"]

    def dist(u, w):                                   # ||u - w + eps||_q and its gradient in u
        d = u - w + eps
        if q == N.inf:
            r = N.abs(d).max(axis=-1)
            return r, N.sign(d) * (N.abs(d) == r[..., None])
        r = (N.abs(d) ** q).sum(axis=-1) ** (1 / q)
        return r, N.sign(d) * N.abs(d) ** (q - 1) / r[..., None] ** (q - 1)
    dap, gap = dist(a, p)
    dan, gan = dist(a, n)
    if k["swap"]:
        dpn, gpn = dist(p, n)
        use = (dpn < dan)[..., None]
        dan = N.minimum(dan, dpn)
    v = N.mean(N.maximum(dap - dan + k["margin"], 0))
    if not grad:
        return v
    w = ((dap - dan + k["margin"]) > 0)[..., None] / dap.size
    if not k["swap"]:
        return v, (w * (gap - gan), -w * gap, w * gan)
    return v, (w * (gap - N.where(use, 0, gan)), -w * (gap + N.where(use, gpn, 0)),
               w * N.where(use, gpn, gan))


def _torch_triplet(F, a, p, n, k, r="mean"):
    return F.triplet_margin_loss(a, p, n, margin=k["margin"], p=k["p"], eps=k["eps"],
                                 swap=k["swap"], reduction=r)


def _jax_triplet(J, a, p, n, k):
    def dist(u, v):
        return J.np.sqrt(J.np.sum((u - v + k["eps"]) ** 2, axis=-1))
    dn = dist(a, n)
    if k["swap"]:
        dn = J.np.minimum(dn, dist(p, n))
    return J.np.mean(J.np.maximum(dist(a, p) - dn + k["margin"], 0.0))


def _jax_cosine(J, x1, x2, y, k):
    dot = J.np.sum(x1 * x2, axis=-1)
    cos = dot / J.np.sqrt((J.np.sum(x1 * x1, axis=-1) + 1e-12)
                          * (J.np.sum(x2 * x2, axis=-1) + 1e-12))
    return J.np.mean(J.np.where(y == 1, 1 - cos, J.np.maximum(0.0, cos - k["margin"])))


def _row_input(name, doc, first=False):
    return Operand(name, "prediction" if first else "input", True,
                   "first" if first else "broadcast", doc)


DECLARATIONS = [
    LossSpec(
        name="cosine_embedding", family="rows", kernel="cosine_embedding",
        summary="Cosine embedding loss",
        formula="cos = <x1, x2> / sqrt((|x1|^2 + 1e-12) (|x2|^2 + 1e-12));  "
                "1 - cos if y == 1, max(0, cos - margin) if y == -1",
        operands=(_row_input("x1", "first vectors (last axis)", first=True),
                  _row_input("x2", "second vectors, broadcast to x1"),
                  Operand("y", "target", False, "samples", "1 (similar) or -1 (dissimilar)")),
        params=(Param("margin", 0.0, Domain(-1.0, 1.0), doc="the margin, in [-1, 1]"),),
        checks=(DataCheck("y", SIGNS, "labels -1 or 1"),),
        has_hessian=False,
        reference=RR.cosine_embedding_parts,
        sampler=dict(x1=normal(), x2=normal(), y=signs),
        peers=dict(
            numpy=_np_cosine_embedding,
            torch=lambda F, x1, x2, y, k, r="mean": F.cosine_embedding_loss(
                x1, x2, y, margin=k["margin"], reduction=r),
            jax=_jax_cosine)),
    LossSpec(
        name="triplet_margin", family="rows", kernel="triplet_margin",
        summary="Triplet margin loss",
        formula="max(d(a, p) - d(a, n) + margin, 0),  d(u, v) = ||u - v + eps||_p  "
                "(swap: min(d(a, n), d(p, n)))",
        operands=(_row_input("anchor", "anchor vectors (last axis)", first=True),
                  _row_input("positive", "positive vectors, broadcast to anchor"),
                  _row_input("negative", "negative vectors, broadcast to anchor")),
        params=(Param("margin", 1.0, POSITIVE, doc="the margin, > 0"),
                Param("p", 2.0, POSITIVE, doc="the norm's degree, > 0 (inf: max norm)"),
                Param("eps", 1e-6, NONNEGATIVE, doc="added to the differences, >= 0"),
                Param("swap", False, REAL, boolean=True,
                      doc="use min(d(a, n), d(p, n)) (distance swap)")),
        has_hessian=False,
        reference=RR.triplet_margin_parts,
        sampler=dict(anchor=normal(), positive=normal(), negative=normal()),
        peers=dict(numpy=_np_triplet_margin,
                   torch=_torch_triplet, jax=_jax_triplet)),
]

