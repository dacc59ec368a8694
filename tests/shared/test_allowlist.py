"""The scikit-learn allow-list: generated from the installed scikit-learn, and every pair reviewed.

shared/allowlist_sklearn.py is regenerated here and compared (an upgrade of scikit-learn shows
up as a diff to read before committing it), and every pair safe_load admits for scikit-learn is
checked for what it does when a pickle uses it: a class may only rebuild itself with
scikit-learn's own pickling hooks or be on the reviewed list below, a function must be on one of
safe_load's reviewed lists.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import numpy as np
import pytest

from mlsp_dev import allowlist
from shared import safe_load
from shared.allowlist_sklearn import SKLEARN_CLASSES

_HOOKS = ("__reduce__", "__reduce_ex__", "__setstate__")

# Classes from outside scikit-learn that its pickles name, and why rebuilding them is harmless.
_FOREIGN_CLASSES: dict[str, str] = {
    "builtins.object": "a bare object; held as make_column_selector's dtype filter",
    "builtins.slice": "slice(start, stop, step) holds three values",
    "functools.partial": "its state is (func, args, keywords): audit.py checks what it wraps",
    "joblib.numpy_pickle.NumpyArrayWrapper": "resolves to safe_load's size-checked reader",
    "numpy.dtype": "a dtype from its description",
    "numpy.ndarray": "an array from shape, dtype and bytes",
    "numpy.number": "an abstract scalar type; held as make_column_selector's dtype filter",
    "numpy.ma.MaskedArray": "an array and its mask",
    "numpy.random._mt19937.MT19937": "a bit generator's state (integers)",
    "numpy.random._pcg64.PCG64": "a bit generator's state (integers)",
    "numpy.random.bit_generator.SeedSequence": "entropy and spawn key (integers)",
    "scipy.interpolate._bsplines.BSpline": "knots and coefficients, default pickling",
    "scipy.sparse._csr.csr_matrix": "three arrays and a shape, default pickling",
}
# Numeric scalar types (numpy.generic's hooks rebuild a number from its bytes).
_SCALARS = {np.dtype(t).type for t in "?bhilqBHILQefd"}
_FORBIDDEN_MODULES = ("os", "posix", "subprocess", "builtins", "io", "pickle", "shutil", "sys")
_FORBIDDEN_WORDS = ("eval", "exec", "system", "open", "load", "save", "file", "import", "run")


def _resolve(module: str, name: str) -> Any:
    module = safe_load._RENAMED_MODULES.get(module, module)
    return getattr(importlib.import_module(module), name)


def _scikit_learn_pairs() -> list[tuple[str, str]]:
    return sorted(safe_load.SKLEARN_GLOBALS)


def test_generated_list_matches_the_installed_scikit_learn():
    table, left_out = allowlist.generate()
    assert left_out == {}, f"estimators the generator could not record: {left_out}"
    expected = allowlist.render(table)
    actual = allowlist.TARGET.read_text()
    diff = "\n".join(difflib.unified_diff(actual.splitlines(), expected.splitlines(), lineterm=""))
    assert actual == expected, f"run `python -m mlsp_dev.allowlist` and review:\n{diff}"


@pytest.mark.parametrize(("module", "name"), _scikit_learn_pairs())
def test_every_allowed_pair_is_reviewed(module, name):
    obj = _resolve(module, name)
    qualified = f"{module}.{name}"
    if isinstance(obj, type):
        if not module.startswith("sklearn.") and obj not in _SCALARS:
            assert qualified in _FOREIGN_CLASSES, f"{qualified}: review it and list it"
        foreign_hooks = [
            f"{klass.__module__}.{klass.__qualname__}.{hook}"
            for klass in obj.__mro__[:-1]  # object's own hooks are pickle's defaults
            for hook in _HOOKS
            if hook in vars(klass) and not klass.__module__.startswith("sklearn.")
        ]
        if foreign_hooks and qualified not in _FOREIGN_CLASSES and obj not in _SCALARS:
            pytest.fail(f"{qualified} pickles through {foreign_hooks}: review it")
        return
    assert (module, name) in safe_load.REVIEWED_FUNCTIONS, f"{qualified} is not reviewed"
    assert module.split(".")[0] not in _FORBIDDEN_MODULES
    assert not any(word in name.lower() for word in _FORBIDDEN_WORDS), qualified


def test_generated_list_holds_classes_only():
    for module, names in SKLEARN_CLASSES.items():
        for name in names.split():
            assert isinstance(_resolve(module, name), type), f"{module}.{name}"


@pytest.mark.parametrize(
    ("module", "name"), sorted(safe_load._flatten(safe_load.TRANSFORM_FUNCTIONS))
)
def test_transform_functions_are_elementwise_ufuncs(module, name):
    """What FunctionTransformer may apply: one array in, one out, nothing else touched."""
    func = _resolve(module, name)
    assert isinstance(func, np.ufunc)
    assert (func.nin, func.nout) == (1, 1)


def test_held_callables_are_refused_as_calls_while_loading():
    assert safe_load.HELD_CALLABLES.isdisjoint(safe_load.LOADER_FUNCTIONS)
    assert np.log1p in safe_load.held_callables()
