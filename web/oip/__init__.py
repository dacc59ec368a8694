"""Open Inference Protocol v2 (KServe v2 / Triton HTTP): /v2 endpoints over the job queue."""
