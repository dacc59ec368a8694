"""How a traffic split picks versions (shared/aliases/routing.py) and how references parse."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from shared.aliases import routing
from shared.aliases.refs import NameRef, parse
from shared.errors import NotFound

pytestmark = [pytest.mark.no_db]


def _split(routes, keys) -> Counter:
    return Counter(routing.pick(routes, routing.bucket("churn", key)) for key in keys)


@pytest.mark.parametrize("routes", [((3, 90), (4, 10)), ((1, 50), (2, 30), (3, 20))])
def test_random_split_over_2000_requests_is_within_4_points(routes):
    counts = _split(routes, [None] * 2000)
    for version, weight in routes:
        assert abs(100 * counts[version] / 2000 - weight) <= 4, counts


def test_sticky_keys_keep_their_version_and_still_follow_the_weights():
    routes = ((3, 90), (4, 10))
    keys = [f"customer-{i}" for i in range(2000)]
    first = [routing.pick(routes, routing.bucket("churn", k)) for k in keys]
    again = [routing.pick(routes, routing.bucket("churn", k)) for k in keys]
    assert first == again
    assert abs(100 * first.count(4) / 2000 - 10) <= 4
    # Moving weight towards v4 moves only callers onto v4, never off it.
    wider = [routing.pick(((3, 50), (4, 50)), routing.bucket("churn", k)) for k in keys]
    assert all(w == 4 for f, w in zip(first, wider, strict=True) if f == 4)


def test_zero_weight_routes_take_nothing():
    counts = _split(((1, 0), (2, 100)), [None] * 500)
    assert counts == {2: 500}


def test_shadow_share():
    copies = sum(routing.copy_to_shadow(25) for _ in range(2000))
    assert abs(100 * copies / 2000 - 25) <= 4
    assert all(routing.copy_to_shadow(100) for _ in range(100))


def test_references_parse():
    ident = uuid.uuid4()
    assert parse(str(ident)) == ident
    assert parse("churn") == NameRef("churn")
    assert parse("churn@production") == NameRef("churn", alias="production")
    assert parse("churn@v3") == NameRef("churn", version=3)
    assert parse("churn@latest") == NameRef("churn", alias="latest")
    for bad in ("churn@", "churn@Prod", "a b", "churn@x@y", "@prod"):
        with pytest.raises(NotFound):
            parse(bad)
