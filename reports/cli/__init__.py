"""The `readrate` command line: `main()` runs it, `cli` is its click group (the shape of rq's `rq/cli`)."""

from .main import cli, main, run

__all__ = ["cli", "main", "run"]
