"""Job inputs at rest: `to_npy` writes exactly what `np.save` would, and reads back exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest

from shared.jobs.inputs import from_npy, to_npy


def _saved(matrix: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, matrix, allow_pickle=False)
    return out.getvalue()


@pytest.mark.parametrize("shape", [(1, 20), (7, 3), (1000, 20), (0, 5), (3, 1)])
def test_bytes_are_np_save_and_round_trip(shape):
    matrix = np.random.default_rng(0).normal(size=shape)
    data = to_npy(matrix)
    assert data == _saved(matrix)
    assert np.array_equal(from_npy(data), matrix)


def test_other_dtypes_and_layouts_are_stored_as_c_ordered_float64():
    ints = np.arange(12).reshape(3, 4)
    assert to_npy(ints) == _saved(ints.astype(np.float64))
    fortran = np.asfortranarray(np.random.default_rng(1).normal(size=(4, 3)))
    assert to_npy(fortran) == _saved(np.ascontiguousarray(fortran))
    assert np.array_equal(from_npy(to_npy(fortran)), fortran)
