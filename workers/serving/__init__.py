"""Serving predictions: the drain loop (batching), the batch pipeline, pure inference, the job
rows a worker claims and writes, inline jobs, dead-lease recovery and per-job telemetry."""
