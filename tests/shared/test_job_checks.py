"""Property tests of the edge validator: whatever JSON arrives, it either yields float rows of
the model's width or raises the 422 error — never anything else."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import ValidationFailed
from shared.jobs.checks import normalise_rows

pytestmark = pytest.mark.no_db

finite = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=30,
)


@given(width=st.integers(1, 8), data=st.data())
def test_valid_matrices_pass_unchanged(width, data):
    rows = data.draw(
        st.lists(st.lists(finite, min_size=width, max_size=width), min_size=1, max_size=20)
    )
    out = normalise_rows(rows, {"n_features": width}, max_rows=100)
    assert out.dtype == np.float64 and out.tolist() == [[float(v) for v in row] for row in rows]
    assert np.isfinite(out).all()


@given(
    width=st.integers(1, 6),
    bad=st.sampled_from([math.nan, math.inf, -math.inf, 10**400, True, None, "1", [1.0], {"a": 1}]),
    data=st.data(),
)
def test_any_bad_value_is_refused(width, bad, data):
    rows = data.draw(
        st.lists(st.lists(finite, min_size=width, max_size=width), min_size=1, max_size=5)
    )
    row, col = data.draw(st.integers(0, len(rows) - 1)), data.draw(st.integers(0, width - 1))
    rows[row][col] = bad
    with pytest.raises(ValidationFailed) as err:
        normalise_rows(rows, {"n_features": width}, max_rows=100)
    assert err.value.details["row"] == row


@settings(max_examples=300)
@given(inputs=st.lists(json_values, max_size=6), width=st.integers(1, 4))
def test_arbitrary_json_never_crashes(inputs, width):
    schema = {"n_features": width, "feature_names": ["a", "b", "c", "d"][:width]}
    try:
        out = normalise_rows(inputs, schema, max_rows=5)
    except ValidationFailed:
        return  # the 422 answer; any other exception fails the test
    assert len(out) == len(inputs)
    assert out.dtype == np.float64 and out.shape == (len(inputs), width)


@given(data=st.data(), width=st.integers(1, 6))
def test_named_rows_are_reordered(data, width):
    names = [f"f{i}" for i in range(width)]
    values = data.draw(st.lists(finite, min_size=width, max_size=width))
    shuffled = data.draw(st.permutations(list(zip(names, values, strict=True))))
    out = normalise_rows([dict(shuffled)], {"n_features": width, "feature_names": names}, 10)
    assert out.tolist() == [[float(v) for v in values]]


@given(n=st.integers(0, 30))
def test_row_count_bounds(n):
    rows = [[1.0]] * n
    if 1 <= n <= 10:
        assert len(normalise_rows(rows, {"n_features": 1}, max_rows=10)) == n
    else:
        with pytest.raises(ValidationFailed):
            normalise_rows(rows, {"n_features": 1}, max_rows=10)
