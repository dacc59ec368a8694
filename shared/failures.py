"""Why a job failed: the codes workers store in `jobs.error_code`, clients' `error.code`.

Plain strings, stored and answered as they are: renaming one is an API change.
"""

from __future__ import annotations

from typing import Final

# The prediction itself raised (a job alone, after its batch failed).
INFERENCE_ERROR: Final = "inference_error"
# The model's artifact could not be loaded (or failed its load-time audit).
MODEL_LOAD_FAILED: Final = "model_load_failed"
# The model was deleted, disabled or is not ready when the job ran.
MODEL_UNAVAILABLE: Final = "model_unavailable"
# The prediction or the model did not fit in the worker child's memory limit.
OUT_OF_MEMORY: Final = "out_of_memory"
# Inference ran past the task's soft time limit, or the worker was killed at the hard one.
TIMEOUT: Final = "timeout"
# The worker process died running the job (in its batch, then alone; or JOB_MAX_ATTEMPTS times).
WORKER_LOST: Final = "worker_lost"
# The queue entry could not be parsed, or its inputs are not a numeric matrix.
BAD_QUEUE_ENTRY: Final = "bad_queue_entry"
# A batch raised something else and its lone job was set aside.
INTERNAL_ERROR: Final = "internal_error"
# Still queued after JOB_TTL_S (set by the expiry task; the job's status is `expired` too).
EXPIRED: Final = "expired"
