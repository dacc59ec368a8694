"""Aliases, traffic and references by name in the web tier (routes, resolution and its cache)."""
