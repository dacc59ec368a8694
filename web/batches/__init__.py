"""Batches over HTTP: a file of rows in, a result file out (docs/api.md, "Batches")."""
