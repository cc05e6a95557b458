"""The loss declarations: the one place where each loss is written down.

One module per family of the math (regression, binary, multiclass, several
inputs, rows); each holds a list ``DECLARATIONS`` of ``LossSpec``.  The
registry (``fastloss._registry``) collects them in this order, checks each
against the C kernels, the reference and the samplers, and everything else
-- the public ``Loss`` objects, their docstrings and signatures, the
reference objects, the tests, the benchmark rows, the README's loss table --
is derived from them.  ``docs/adding-a-loss.md`` says how to add one.
"""
from . import binary, multiclass, regression, rows, several

MODULES = (regression, binary, multiclass, several, rows)


def declarations():
    """Every declaration, in the order of the docs."""
    return [spec for m in MODULES for spec in m.DECLARATIONS]
