"""A section of BENCHMARKS.md that one benchmark script owns, between its markers
(`<!-- NAME benchmark -->` ... `<!-- /NAME benchmark -->`); bench/run.py keeps them."""
import os


def write(path, begin, end, lines):
    """Replaces the section (or appends it) with `lines`, which start with `begin` and end with `end`."""
    text = open(path).read() if os.path.exists(path) else ""
    body = "\n".join(lines)
    if begin in text and end in text:
        text = text[:text.index(begin)] + body + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + body
    open(path, "w").write(text)
    print(body)
