"""Usage analytics of a model: volumes, outcomes, latency percentiles, failures."""
