"""One BLAS/OpenMP thread per worker process: parallelism comes from processes, and N processes x
M threads on 2 cores only thrash. Imports no runtime, so the process setup can call it cheaply.
"""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_threads() -> None:
    """Cap the thread pools of this process to one thread (call in each worker process)."""
    for var in _THREAD_VARS:
        os.environ.setdefault(var, "1")  # for libraries loaded later
    threadpool_limits(limits=1)  # for those already loaded (numpy's BLAS, scikit-learn's OpenMP)
