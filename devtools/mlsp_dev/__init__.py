"""Developer tools of the ML Model Serving Platform: `mlsp-dev` and the embedded PostgreSQL and
Redis it starts (never installed with the server)."""
