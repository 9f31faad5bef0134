#!/usr/bin/env python3
"""Checks that the folder tree in README.md's "Layout" section names exactly the folders of Sources/ and Tests/
(below the generated protoc-c output and the fuzz corpus, whose folders are data). Called by scripts/lint.sh."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_BELOW = ("Sources/DTMProtoC", "Tests/FuzzCorpus")


def documented():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("\n## Layout\n", 1)[1]
    block = section.split("```", 2)[1]
    paths, stack = set(), []
    for line in block.splitlines():
        m = re.match(r"^( *)([A-Za-z0-9_.-]+)/(\s|$)", line)
        if not m:
            continue
        depth = len(m.group(1)) // 2
        stack = stack[:depth] + [m.group(2)]
        paths.add("/".join(stack))
    return paths


def actual():
    paths = set()
    for top in ("Sources", "Tests"):
        for dirpath, dirnames, _ in os.walk(os.path.join(ROOT, top)):
            rel = os.path.relpath(dirpath, ROOT)
            paths.add(rel)
            if rel in SKIP_BELOW:
                dirnames[:] = []
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    return paths


def main():
    doc, real = documented(), actual()
    missing, stale = sorted(real - doc), sorted(doc - real)
    if missing or stale:
        for p in missing:
            print("README Layout does not name the folder %s" % p)
        for p in stale:
            print("README Layout names %s, which does not exist" % p)
        sys.exit(1)


if __name__ == "__main__":
    main()
