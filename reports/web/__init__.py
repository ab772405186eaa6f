"""The web half: the HTTP collector, readrate.js, the dashboard and the example page (a composition root)."""
