"""`python -m readrate.reports` runs the `readrate` command (where the console script is not on PATH)."""

from .cli import main

main()
