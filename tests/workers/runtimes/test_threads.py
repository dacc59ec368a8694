"""The per-process thread limit (workers/runtimes/threads.py)."""

from __future__ import annotations

import pytest

from workers.runtimes.threads import limit_threads

pytestmark = pytest.mark.no_db


def test_limit_threads_caps_blas():
    from threadpoolctl import threadpool_info

    limit_threads()
    assert all(pool["num_threads"] == 1 for pool in threadpool_info())
