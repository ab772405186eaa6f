"""`python -m reports` runs the `readrate` command (used where the console script is not on PATH)."""

from .cli import main

main()
