"""readrate's read side: queries, ranking formulas, renderers, the `readrate` CLI and the page API."""
