"""One error shape (web/errors.py), also for the 404/405 Flask answers itself and for crashes,
which leak nothing."""

from __future__ import annotations


def test_unknown_route_uses_error_shape(client):
    resp = client.get("/api/v1/nope")
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"
    assert resp.mimetype == "application/json"


def test_wrong_method_uses_error_shape(client):
    resp = client.delete("/api/v1/health/live")
    assert resp.status_code == 405
    assert resp.json["error"]["code"] == "method_not_allowed"


def test_unhandled_exception_is_500_without_internals():
    from web import create_app

    app = create_app()

    @app.get("/boom-test-only")
    def boom():
        raise RuntimeError("secret internals")

    resp = app.test_client().get("/boom-test-only")
    assert resp.status_code == 500
    assert resp.json == {"error": {"code": "internal_error", "message": "Internal server error"}}
