"""Model aliases and traffic routes per model name: their tables and how a reference resolves."""
