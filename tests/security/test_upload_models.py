"""Hostile uploads end to end: each file of the security review goes through the API, a real
worker and its validation sandbox, and must end `failed` with a short, clean reason, fast."""

from __future__ import annotations

import bz2
import io
import json
import os
import pickle
import time
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io
from onnx import TensorProto, helper
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import StackingRegressor, VotingClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from tests.fixtures.models import fit_classifier, iris, upload

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]
SECRETS = ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "postgresql://", "REDIS_URL")


def _refused(client, account, path: Path, reason: str) -> dict:
    started = time.monotonic()
    resp = upload(client, account, path, name="hostile")
    assert resp.status_code in (202, 422), resp.json
    if resp.status_code == 422:  # failed within the wait: the record is readable by its id
        assert resp.json["error"]["code"] == "invalid_model", resp.json
        model_id = resp.json["error"]["details"]["model_id"]
        model = client.get(f"/api/v1/models/{model_id}", headers=account.headers).json
    else:
        model = resp.json
    while model["status"] == "validating" and time.monotonic() - started < 30:
        time.sleep(0.1)
        model = client.get(f"/api/v1/models/{model['id']}", headers=account.headers).json
    assert model["status"] == "failed", model
    assert reason in model["error"], model["error"]
    assert len(model["error"]) <= 300 and "\x00" not in model["error"]
    assert not any(secret in model["error"] for secret in SECRETS)
    model["seconds"] = time.monotonic() - started
    return model


def test_skops_file_reader_is_refused(client, user, tmp_path):
    """The review's exploit: a stacked model whose vectorizer opens the path a dummy model
    predicts (skops' defaults trusted both classes and numpy.float64 as its analyzer)."""
    x = np.array([["a b"], ["b c"], ["c a"], ["a a"]])
    vectorizer = CountVectorizer().fit(["apple banana", "banana cherry"])
    vectorizer.input, vectorizer.analyzer = "filename", np.float64
    stack = StackingRegressor(
        [("path", Pipeline([("dummy", DummyClassifier(strategy="constant", constant="x"))]))],
        final_estimator=LinearRegression(),
    )
    stack.estimators_ = [DummyClassifier(strategy="constant", constant="/proc/self/environ")]
    stack.estimators_[0].fit(x[:, :1], ["/proc/self/environ"] * 4)
    stack.final_estimator_ = Pipeline([("read", vectorizer), ("fit", LinearRegression())])
    path = tmp_path / "reader.skops"
    skops.io.dump(stack, path)
    _refused(client, user, path, "not allowed")


def test_onnx_sparse_external_data_is_refused(client, user, tmp_path):
    """Constant(sparse_value=...) whose values live in an external file under the cwd."""
    values = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])
    values.ClearField("float_data")
    values.data_location = TensorProto.EXTERNAL
    entry = values.external_data.add()
    entry.key, entry.value = "location", "models/other-tenant.joblib"
    indices = helper.make_tensor("i", TensorProto.INT64, [1], [0])
    sparse = helper.make_sparse_tensor(values, indices, [4])
    constant = helper.make_node("Constant", [], ["c"], sparse_value=sparse)
    add = helper.make_node("Add", ["x", "c"], ["y"])
    path = _onnx_file(tmp_path, [constant, add])
    _refused(client, user, path, "external data")


@pytest.mark.parametrize(
    ("kind", "reason"), [("loop", "control flow"), ("allocation", "ConstantOfShape")]
)
def test_onnx_unbounded_graphs_are_refused(client, user, tmp_path, kind, reason):
    """A Loop whose trip count comes from the input (it ran for minutes) and a 295-byte
    ConstantOfShape sized by the input (2.35 GB, and it was marked ready)."""
    if kind == "loop":
        body = helper.make_graph(
            [helper.make_node("Identity", ["cond_in"], ["cond_out"])],
            "body",
            [
                helper.make_tensor_value_info("i", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            ],
            [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])],
        )
        nodes = [
            helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
            helper.make_node("Cast", ["m"], ["trips"], to=TensorProto.INT64),
            helper.make_node("Loop", ["trips", ""], [], body=body),
            helper.make_node("Identity", ["x"], ["y"]),
        ]
    else:
        nodes = [
            helper.make_node("Cast", ["x"], ["shape_f"], to=TensorProto.INT64),
            helper.make_node("ReduceMax", ["shape_f"], ["n"], keepdims=1),
            helper.make_node("ConstantOfShape", ["n"], ["big"]),
            helper.make_node("Identity", ["x"], ["y"]),
        ]
    _refused(client, user, _onnx_file(tmp_path, nodes), reason)


def test_looping_decision_tree_is_refused(client, user, tmp_path):
    """right_child[0] = 0 in a normal joblib tree (allowed globals only): predict loops in C
    with the GIL released. The audit refuses it before anything predicts."""
    path = tmp_path / "loop.joblib"
    joblib.dump(_mutated_tree("right_child", 0, 0), path)
    model = _refused(client, user, path, "tree node points at a child")
    assert model["seconds"] < 10


def test_decompression_bomb_is_refused_fast(client, user, tmp_path):
    """A few hundred bytes of bz2 declaring a 3 GiB bytes object (one reached 4.4 GB before):
    refused at the declaration, before a byte of it is decompressed."""
    head = b"\x80\x04\x8e" + (3 << 30).to_bytes(8, "little")
    path = tmp_path / "bomb.joblib"
    path.write_bytes(bz2.compress(head + bytes(1 << 20) + b"."))
    assert path.stat().st_size < 4096
    model = _refused(client, user, path, "loading limit")
    assert model["seconds"] < 10


def test_shared_list_classes_are_refused(client, user, tmp_path):
    """classes_ as a list DAG of 2**40 paths in a few hundred bytes: never walked path by path."""
    model = fit_classifier()
    shared: list = [0, 1, 2]
    for _ in range(40):
        shared = [shared, shared]
    model.classes_ = shared
    path = tmp_path / "dag.joblib"
    joblib.dump(model, path)
    assert path.stat().st_size < 4096
    _refused(client, user, path, "classes_ must be a flat list")


def test_foreign_callable_in_an_allowed_class_is_refused(client, user, tmp_path):
    """An allowed estimator carrying a callable the allow-list can name (a numpy internal)."""
    model = fit_classifier()
    model.score_func = np._core.multiarray._reconstruct
    path = tmp_path / "callable.joblib"
    joblib.dump(model, path)
    _refused(client, user, path, "callable")


def test_refusal_text_from_the_file_is_stored_clean(client, user, tmp_path):
    """A skops type name with a NUL and a megabyte of text: PostgreSQL refused the NUL inside
    the recording (the model stayed `validating` forever); now it is cleaned and cut."""
    buffer = io.BytesIO()
    skops.io.dump(fit_classifier(), buffer)
    path = tmp_path / "nul.skops"
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "schema.json":
                schema = json.loads(data)
                schema["__module__"] = "evil\x00" + "x" * (1 << 20)
                data = json.dumps(schema).encode()
            target.writestr(item, data)
    _refused(client, user, path, "not allowed: evil x")


def _onnx_file(tmp_path: Path, nodes: list) -> Path:
    graph = helper.make_graph(
        nodes,
        "hostile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "hostile.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _mutated_tree(field: str, index: int, value: float) -> DecisionTreeClassifier:
    """A fitted tree with one node-array entry changed, as a hostile file would carry it."""
    from sklearn.tree._tree import Tree

    x, y = iris()
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)
    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][index] = value
    state["nodes"] = nodes
    tree = Tree(model.n_features_in_, np.array([3], dtype=np.intp), 1)
    tree.__setstate__(state)
    model.tree_ = tree
    return model


def _reduce(module: str, name: str, *args: object) -> bytes:
    """A protocol 4 pickle calling module.name(*args) while it loads."""
    name_ops = b"".join(b"\x8c" + bytes([len(s)]) + s.encode() for s in (module, name))
    return b"\x80\x04" + name_ops + b"\x93" + pickle.dumps(args, protocol=4)[2:-1] + b"R."


class _Call:
    """Pickles as `func(*args)`."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _hostile_file(tmp_path: Path, kind: str, marker: Path) -> Path:
    path = tmp_path / f"{kind}.joblib"
    x, y = iris()
    if kind == "ufunc_call":  # an allowed ufunc called on arguments of the file's choosing
        path.write_bytes(_reduce("numpy", "sqrt", np.ones(2), np.zeros(2)))
    elif kind == "meta_estimator":
        voting = VotingClassifier([("lr", LogisticRegression(max_iter=500))]).fit(x, y)
        voting.estimators_ = [_Call(os.system, f"touch {marker}")]
        joblib.dump(voting, path)
    else:  # a FunctionTransformer whose func is off the list, in a pipeline that predicts
        run = FunctionTransformer(func=os.system, validate=False)
        joblib.dump(Pipeline([("run", run), ("clf", fit_classifier())]), path)
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("ufunc_call", "calls sqrt while loading"),
        ("meta_estimator", "forbidden global posix.system"),
        ("function_transformer", "forbidden global posix.system"),
    ],
)
def test_newly_allowed_kinds_abused_are_refused(client, user, tmp_path, kind, reason):
    """What the scikit-learn-wide allow-list admits (ufuncs as values, meta-estimators,
    FunctionTransformer) cannot carry a call: refused, and nothing ran."""
    marker = tmp_path / "pwned"
    _refused(client, user, _hostile_file(tmp_path, kind, marker), reason)
    assert not marker.exists()
