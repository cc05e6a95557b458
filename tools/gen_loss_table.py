"""Regenerate the README's loss table from the loss declarations.

    python tools/gen_loss_table.py          # rewrite README.md in place
    python tools/gen_loss_table.py --check  # exit 1 if it is stale

The table lies between the lines <!-- losses:begin --> and
<!-- losses:end -->; tests/test_operands.py checks that it is current."""
import pathlib
import sys

from fastloss._registry import loss_table_markdown

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- losses:begin -->", "<!-- losses:end -->"


def main(argv):
    text = README.read_text()
    a = text.index(BEGIN) + len(BEGIN)
    b = text.index(END)
    new = text[:a] + "\n" + loss_table_markdown() + "\n" + text[b:]
    if "--check" in argv:
        if new != text:
            print("README.md: the loss table is stale; run python tools/gen_loss_table.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
