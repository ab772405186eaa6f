"""Options several commands share, declared once."""

from __future__ import annotations

import click

from .render import FORMATS

format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="Output format: a table for people, CSV/JSON for scripts, Markdown for documents.",
)
