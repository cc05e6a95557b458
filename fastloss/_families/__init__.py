"""One module per family of losses: how a call's operands are laid out for
that family's C driver.  No family imports another; what they share is
``fastloss._call``."""
from . import classes, elementwise, rows

FAMILIES = {"elementwise": elementwise, "class": classes, "rows": rows}
