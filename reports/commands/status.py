"""Placeholder: `readrate status` commands are being built (see the open issues)."""

import click


def register(group: click.Group) -> None:
    """Adds nothing yet."""
