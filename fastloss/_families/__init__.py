"""One module per family of losses: how a call's operands are laid out for
that family's C driver.  No family imports another; what they share is
``fastloss._call``."""
from .._call import parse
from . import classes, elementwise, rows

FAMILIES = {"elementwise": elementwise, "class": classes, "rows": rows}


def run(loss, method, args, kwargs):
    """The generic implementation of every Loss method: what a method calls
    when its compiled fast path does not apply."""
    return FAMILIES[loss.family].run(loss, parse(loss, method, args, kwargs))
