"""Count code lines per module (comments, docstrings and blank lines excluded).

Run: `python tools/sz.py [paths...]`. STYLE.md section F caps modules at 600 code lines unless
the module docstring names the exception ("size-cap exception: <why>").
"""
from __future__ import annotations

import io
import sys
import tokenize
from pathlib import Path

HARD_CAP = 600
SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
        tokenize.ENCODING, tokenize.ENDMARKER}


def code_lines(source: str) -> int:
    """Number of lines holding code tokens, docstrings (string statements) excluded."""
    lines: set[int] = set()
    prev_sig = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in SKIP:
            if tok.type == tokenize.NEWLINE:
                prev_sig = None
            continue
        # a string that starts a logical line is a docstring or a bare string statement
        if tok.type == tokenize.STRING and prev_sig is None:
            prev_sig = "docstring"
            continue
        if prev_sig == "docstring" and tok.type != tokenize.STRING:
            prev_sig = tok
        elif prev_sig != "docstring":
            prev_sig = tok
        if prev_sig != "docstring":
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


def has_exception_note(source: str) -> bool:
    head = source[:2000].lower()
    return "size-cap exception" in head


def main(paths: list[str]) -> int:
    roots = [Path(p) for p in (paths or ["nanovl"])]
    files = sorted(f for r in roots for f in ([r] if r.is_file() else r.rglob("*.py")))
    over = 0
    for f in files:
        src = f.read_text()
        n = code_lines(src)
        flag = ""
        if n > HARD_CAP and not has_exception_note(src):
            flag, over = "  OVER CAP", over + 1
        print(f"{n:6d}  {f}{flag}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
