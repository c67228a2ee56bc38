"""`python -m nanovl ...` runs the `nanovl` command line (nanovl/cli.py)."""
from nanovl.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
