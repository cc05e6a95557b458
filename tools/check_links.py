"""Check the relative links of README.md and docs/*.md.

    python tools/check_links.py [REPO_ROOT]

Every relative Markdown link ``[text](path)`` or ``![alt](path)`` must name an
existing file or directory inside the repository, and a ``#fragment`` into a Markdown file must
match one of its headings (GitHub's anchor rules).  Links with a scheme
(``https:``, ``mailto:``) are not checked; fenced code blocks are skipped.
Prints each broken link; exits 1 if there is one.
"""
import pathlib
import re
import sys

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def prose(md):
    return FENCE.sub("", md.read_text(encoding="utf-8"))


def anchors(md):
    out, seen = set(), {}
    for title in HEADING.findall(prose(md)):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(root):
    bad = []
    for md in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        if not md.exists():
            continue
        for target in LINK.findall(prose(md)):
            if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target):
                continue
            path, _, frag = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            where = f"{md.relative_to(root)}: ({target})"
            if dest != root and root not in dest.parents:
                bad.append(f"{where}: outside the repository")
            elif not dest.exists():
                bad.append(f"{where}: no such file")
            elif frag and dest.suffix == ".md" and frag not in anchors(dest):
                bad.append(f"{where}: no heading #{frag} in {dest.relative_to(root)}")
    return bad


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = pathlib.Path(argv[0] if argv else ".").resolve()
    bad = broken_links(root)
    print("\n".join(bad + [f"check_links: {len(bad)} broken link(s)" if bad
                           else "check_links: every relative link resolves"]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
