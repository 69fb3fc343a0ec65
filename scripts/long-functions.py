#!/usr/bin/env python3
"""Lists the functions longer than LIMIT lines under the given folders or files, longest first.

    python3 scripts/long-functions.py 80 node/src/daemon protocol/src/engine protocol/src/engine.rs

A function's length runs from its `fn` line to its closing brace, found by counting braces
outside comments, strings and character literals (a text scan, not a parser: good enough for
this code base's style, and it flags, it does not decide).
"""
import glob
import re
import sys


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    head = re.compile(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?fn\s+(\w+)")
    for start, line in enumerate(lines):
        m = head.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for end in range(start, len(lines)):
            code = re.sub(r"//.*", "", lines[end])
            code = re.sub(r'"(\\.|[^"\\])*"', '""', code)
            code = re.sub(r"'(\\.|[^'\\])'", "''", code)
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            if opened and depth == 0:
                yield end - start + 1, start + 1, m.group(5)
                break
            if not opened and code.rstrip().endswith(";"):
                break


def main():
    limit, paths = int(sys.argv[1]), sys.argv[2:]
    found = []
    for p in paths:
        files = [p] if p.endswith(".rs") else sorted(glob.glob(p + "/**/*.rs", recursive=True))
        for f in files:
            found += [(n, f, line, name) for n, line, name in functions(f) if n > limit]
    for n, f, line, name in sorted(found, key=lambda x: (-x[0], x[1], x[2])):
        print(f"{n:5d}  {f}:{line}  {name}")


if __name__ == "__main__":
    main()
