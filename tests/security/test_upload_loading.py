"""Loading limits and the audit, without a worker: the byte budget of the joblib reader, the
parameter audit on classes the allow-list does not even admit, and loaded-size cache entries."""

from __future__ import annotations

import bz2
import contextlib
import functools
import io
import os
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor, make_column_selector
from sklearn.ensemble import VotingClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

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


# --- payloads abusing what the scikit-learn-wide allow-list admits ----------------------------


def _reduce(module: str, name: str, *args: object) -> bytes:
    """A protocol 4 pickle calling module.name(*args) while it loads."""
    name_ops = b"".join(b"\x8c" + bytes([len(s)]) + s.encode() for s in (module, name))
    return b"\x80\x04" + name_ops + b"\x93" + pickle.dumps(args, protocol=4)[2:-1] + b"R."


def _obj_call(module: str, name: str, *args: object) -> bytes:
    """MARK, the global, the arguments, OBJ: calls module.name(*args)."""
    name_ops = b"".join(b"\x8c" + bytes([len(s)]) + s.encode() for s in (module, name))
    arg_ops = b"".join(pickle.dumps(a, protocol=4)[2:-1] for a in args)
    return b"\x80\x04(" + name_ops + b"\x93" + arg_ops + b"o."


def _inst_call(module: str, name: str, *args: object) -> bytes:
    """MARK, the arguments, INST module name: calls module.name(*args)."""
    arg_ops = b"".join(pickle.dumps(a, protocol=4)[2:-1] for a in args)
    return b"\x80\x04(" + arg_ops + f"i{module}\n{name}\n".encode() + b"."


class _Call:
    """Pickles as `func(*args)`."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _dumps(model: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def _fitted_transformer(**params: object) -> FunctionTransformer:
    return FunctionTransformer(**params).fit(np.ones((2, 2)))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # an allowed ufunc called with arguments the file chose (an `out=` array to write into)
        (_reduce("numpy", "log1p", np.ones(2), np.zeros(2)), "calls log1p while loading"),
        (_reduce("numpy", "mean", np.ones(2)), "calls mean while loading"),
        (_reduce("sklearn.utils.validation", "check_array", [[1.0]]), "calls check_array"),
        (_reduce("numpy", "add", np.ones(2), np.ones(2)), "forbidden global numpy.add"),
        # the same call through the protocol 0/1 opcodes OBJ and INST, which a stream may mix in
        (_obj_call("numpy", "log1p", np.ones(2)), "calls log1p while loading"),
        (_inst_call("numpy", "log1p", np.ones(2)), "calls log1p while loading"),
    ],
)
def test_allowed_callables_cannot_be_called_while_loading(data, reason):
    with pytest.raises(UnsafeModelError, match=reason):
        load_joblib(data)


def test_meta_estimator_holding_a_forbidden_object_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    x, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    voting = VotingClassifier([("lr", LogisticRegression())]).fit(x, y)
    voting.estimators_ = [_Call(os.system, f"touch {marker}")]
    data = _dumps(voting)
    with contextlib.suppress(Exception):  # control: plain joblib runs it
        joblib.load(io.BytesIO(data))
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeModelError, match=r"forbidden global posix\.system"):
        load_joblib(data)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("func", "reason"),
    [
        (os.system, r"forbidden global posix\.system"),
        (np.savetxt, r"forbidden global numpy\.savetxt"),
        (eval, r"forbidden global builtins\.eval"),
        (np.add, r"forbidden global numpy\.add"),
        (functools.partial(os.system, "id"), r"forbidden global posix\.system"),
    ],
)
def test_function_transformer_off_the_list_is_refused_at_loading(tmp_path, func, reason):
    marker = tmp_path / "pwned"
    data = _dumps(_fitted_transformer(func=func, validate=False))
    if func is os.system:  # control: loaded plainly, transform runs the command
        joblib.load(io.BytesIO(data)).transform(f"touch {marker}")
        assert marker.exists()
        marker.unlink()
    with pytest.raises(UnsafeModelError, match=reason):
        load_joblib(data)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        # names the allow-list admits, in a place where they would be called on the input
        ({"func": np._core.multiarray._reconstruct}, "callable"),
        ({"func": Pipeline}, "holds the type"),
        ({"func": np.sqrt, "kw_args": {"out": np.zeros(2)}}, "kw_args holds"),
        ({"func": functools.partial(np.sqrt, out=np.zeros(2))}, "arguments that are not values"),
    ],
)
def test_function_transformer_with_allowed_names_misused_is_refused_by_the_audit(params, reason):
    model = load_joblib(_dumps(_fitted_transformer(**params)))
    with pytest.raises(UnsafeModelError, match=reason):
        audit_model(model)


def test_reviewed_transforms_pass_the_audit():
    x, y = np.arange(1.0, 9.0).reshape(4, 2), np.arange(1.0, 5.0)
    target = TransformedTargetRegressor(func=np.log1p, inverse_func=np.expm1).fit(x, y)
    for model in (_fitted_transformer(func=np.log1p, inverse_func=np.expm1), target):
        loaded = load_joblib(_dumps(model))
        audit_model(loaded)
        method = "predict" if model is target else "transform"
        np.testing.assert_array_equal(getattr(loaded, method)(x), getattr(model, method)(x))


def test_columns_chosen_by_dtype_pass_the_audit():
    """make_column_selector keeps numpy.number and object as filters: types, but values."""
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "c": ["x", "y", "x", "y"]})
    prep = ColumnTransformer(
        [
            ("num", SimpleImputer(), make_column_selector(dtype_include=np.number)),
            ("cat", OneHotEncoder(), make_column_selector(dtype_include=object)),
        ]
    )
    model = Pipeline([("prep", prep), ("lr", LogisticRegression())]).fit(frame, [0, 1, 0, 1])
    loaded = load_joblib(_dumps(model))
    audit_model(loaded)
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_trees_fitted_with_missing_values_pass_and_bad_thresholds_do_not():
    """scikit-learn splits missing from present values with a threshold of +inf (every number
    left, NaN right): a real model, not a tampered one. NaN and -inf are still refused."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    x[::3, 0] = np.nan
    forest = RandomForestClassifier(10, random_state=0).fit(x, x[:, 1] > 0)
    assert any(np.isposinf(t.tree_.threshold).any() for t in forest.estimators_)
    audit_model(load_joblib(_dumps(forest)))
    for bad in (np.nan, -np.inf):
        tampered = load_joblib(_dumps(forest))
        tree = tampered.estimators_[0].tree_
        split = int(np.flatnonzero(tree.children_left != -1)[0])
        tree.threshold[split] = bad
        with pytest.raises(ModelLoadError, match="threshold"):
            audit_model(tampered)


@pytest.mark.parametrize("loss", ["modified_huber", "squared_hinge", "hinge", "log_loss"])
def test_every_sgd_loss_loads(loss):
    from sklearn.linear_model import SGDClassifier

    x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
    model = SGDClassifier(loss=loss, random_state=0).fit(x, y)
    loaded = load_joblib(_dumps(model))
    audit_model(loaded)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
