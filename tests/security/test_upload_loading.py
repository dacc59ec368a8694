"""Loading limits and the audit, without a worker: the byte budget of the joblib reader, the
parameter audit on classes the allow-list does not even admit, and loaded-size cache entries."""

from __future__ import annotations

import bz2
import io
import pickle

import joblib
import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.pipeline import Pipeline

from shared.safe_load import ModelLoadError, UnsafeModelError, load_joblib
from workers.runtimes.cache import ModelCache
from workers.validation.audit import audit_model

pytestmark = pytest.mark.no_db


def test_decompressed_bytes_count_against_the_budget():
    """Many small reads add up: 64 bytes objects of 32 KiB each pass a 1 MiB budget one by one
    but not together, and a compressed stream gets no more room than a plain one."""
    payload = pickle.dumps([bytes(32 << 10) for _ in range(64)], protocol=4)
    for data in (payload, bz2.compress(payload)):
        with pytest.raises(ModelLoadError, match="loading limit"):
            load_joblib(data, max_bytes=1 << 20)
    assert len(load_joblib(payload, max_bytes=4 << 20)) == 64


def test_array_declaring_more_than_the_file_holds_is_refused_before_allocation():
    buffer = io.BytesIO()
    joblib.dump(np.zeros(70_000), buffer)
    shape = b"shape\x94J" + (70_000).to_bytes(4, "little")
    data = buffer.getvalue().replace(shape, b"shape\x94J" + (1 << 30).to_bytes(4, "little"), 1)
    assert data != buffer.getvalue()  # the shape (70000,) became (2**30,): 8 GiB declared
    with pytest.raises(ModelLoadError, match="loading limit"):
        load_joblib(data)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"input": "filename"}, "reads files"),
        ({"input": "file"}, "reads files"),
        ({"analyzer": np.float64}, "analyzer holds the type"),
        ({"tokenizer": np.char.split}, "callable"),
        ({"preprocessor": print}, "callable"),
    ],
)
def test_parameters_that_do_io_or_call_things_are_refused(params, reason):
    """The audit holds even for a class a later allow-list admits (vectorizers are not yet)."""
    vectorizer = CountVectorizer().fit(["apple banana", "banana cherry"])
    vectorizer.set_params(**params)
    with pytest.raises(UnsafeModelError, match=reason):
        audit_model(Pipeline([("text", vectorizer)]))


def test_pipeline_memory_is_refused():
    with pytest.raises(UnsafeModelError, match="writes to disk"):
        audit_model(Pipeline([("text", CountVectorizer())], memory="/tmp/cache"))


def test_cache_entry_weighs_what_loading_took_not_the_file():
    """A 400 MB array from a 'file' said to be 100 bytes counts as ~400 MB."""
    cache = ModelCache(max_entries=8, max_bytes=1 << 40)
    cache.get_or_load(("m", "sha"), 100, lambda: np.ones(50_000_000))
    assert cache.total_bytes > 350_000_000
