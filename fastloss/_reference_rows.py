"""Pure-NumPy reference math of the row losses (SPEC section 8).

Each function takes already-broadcast float arrays of shape (..., D) (labels
of the leading shape) and returns the per-sample loss (leading shape) and
its per-sample gradient rows (shape (..., D)), unweighted and unreduced,
computed in float64 with straightforward formulas, independently of the C
kernels.  Conventions (as the kernels):
  * at a kink (max(0, .) exactly 0) and where the hinge is inactive the
    gradient is 0;
  * a sample whose loss is NaN has NaN gradient rows;
  * distances are torch's pairwise_distance, ||u - v + eps||_p; their
    gradient is 0 where the distance is 0, and 0 on the entries of u - v +
    eps that are 0 (torch's sgn(0) = 0; for p < 1 torch masks them);
    p = inf shares the gradient equally among the entries attaining the
    max, and swap's tie d(a, n) == d(p, n) shares it between the two.
Finite inputs only are covered here beyond NaN (the kernels' limits for
infinite inputs are tested on their own).
"""
import numpy as np

__all__ = ["cosine_embedding_parts", "triplet_margin_parts", "pairwise_distance_parts"]

_COS_EPS = 1e-12


def cosine_embedding_parts(x1, x2, y, margin=0.0):
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    dot = np.sum(x1 * x2, axis=-1)
    s1 = np.sum(x1 * x1, axis=-1) + _COS_EPS
    s2 = np.sum(x2 * x2, axis=-1) + _COS_EPS
    denom = np.sqrt(s1 * s2)
    cos = dot / denom
    z = cos - margin
    with np.errstate(invalid="ignore"):
        pos = y == 1
        neg = y == -1
        loss = np.where(pos, 1.0 - cos, np.where(neg, np.maximum(z, 0.0), np.nan))
        loss = np.where(np.isnan(z) & neg, np.nan, loss)
        dl = np.where(pos, -1.0, np.where(neg & (z > 0), 1.0, 0.0))
    dl = np.where(np.isnan(loss), np.nan, dl)
    # dcos/dx1 = x2 / denom - cos * x1 / s1, and symmetrically
    dc1 = x2 / denom[..., None] - (cos / s1)[..., None] * x1
    dc2 = x1 / denom[..., None] - (cos / s2)[..., None] * x2
    g1 = np.where(dl[..., None] == 0, 0.0, dl[..., None] * dc1)
    g2 = np.where(dl[..., None] == 0, 0.0, dl[..., None] * dc2)
    return loss, {"x1": g1, "x2": g2}


def pairwise_distance_parts(x, y, p, eps):
    """d = ||x - y + eps||_p over the last axis and dd/dx (= -dd/dy)."""
    u = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64) + eps
    au = np.abs(u)
    if np.isinf(p):
        d = np.max(au, axis=-1) if u.shape[-1] else np.zeros(u.shape[:-1])
        hit = (au == d[..., None]) & (d[..., None] > 0)
        cnt = np.maximum(np.sum(hit, axis=-1), 1)
        g = np.sign(u) * hit / cnt[..., None]
    else:
        # scaled by the max so that no power overflows
        m = np.max(au, axis=-1) if u.shape[-1] else np.zeros(u.shape[:-1])
        msafe = np.where(m > 0, m, 1.0)
        t = au / msafe[..., None]
        d = m * np.sum(t ** p, axis=-1) ** (1.0 / p)
        dsafe = np.where(d > 0, d, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.sign(u) * (au / dsafe[..., None]) ** (p - 1.0)
        g = np.where(au == 0, 0.0, g)
        g = np.where(d[..., None] > 0, g, 0.0)
    nan = np.isnan(d)
    g = np.where(nan[..., None], np.nan, g)
    return d, g


def triplet_margin_parts(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6,
                         swap=False):
    a = np.asarray(anchor, dtype=np.float64)
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    d_ap, f_u = pairwise_distance_parts(a, pos, p, eps)
    d_an, f_v = pairwise_distance_parts(a, neg, p, eps)
    share_an = np.ones_like(d_an)
    share_pn = np.zeros_like(d_an)
    dneg = d_an
    f_w = np.zeros_like(f_v)
    if swap:
        d_pn, f_w = pairwise_distance_parts(pos, neg, p, eps)
        dneg = np.minimum(d_an, d_pn)          # NaN propagates
        tie = d_an == d_pn
        share_an = np.where(tie, 0.5, np.where(d_an < d_pn, 1.0, 0.0))
        share_pn = np.where(tie, 0.5, np.where(d_pn < d_an, 1.0, 0.0))
    z = d_ap - dneg + margin
    with np.errstate(invalid="ignore"):
        loss = np.where(z > 0, z, np.where(np.isnan(z), np.nan, 0.0))
        act = np.where(np.isnan(z), np.nan, (z > 0).astype(np.float64))
    c = act[..., None]
    sa = share_an[..., None]
    sp = share_pn[..., None]
    # l = d(a,p) - sa d(a,n) - sp d(p,n) + margin
    ga = c * (f_u - sa * f_v)
    gp = c * (-f_u - sp * f_w)
    gn = c * (sa * f_v + sp * f_w)
    zero = (act == 0)[..., None]
    ga, gp, gn = (np.where(zero, 0.0, g) for g in (ga, gp, gn))
    nan = np.isnan(loss)[..., None]
    ga, gp, gn = (np.where(nan, np.nan, g) for g in (ga, gp, gn))
    return loss, {"anchor": ga, "positive": gp, "negative": gn}
