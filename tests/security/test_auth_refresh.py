"""Issue 18, finding 12 (auth half): reuse of a rotated refresh token revokes its family.

OAuth 2.0 Security BCP, refresh token rotation: when a refresh token that was already exchanged
comes back, either the user or an attacker holds a copy, and the server cannot tell which; so
every token descending from that login stops working, the current refresh token and its access
tokens included. Other logins of the same user are untouched.
"""

from __future__ import annotations

from tests.fixtures.api import PASSWORD, register_and_login

REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_reused_refresh_token_revokes_its_family(client):
    account = register_and_login(client)
    other_login = client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    ).json
    rotated = client.post(REFRESH, headers=_bearer(account.refresh_token))
    assert rotated.status_code == 200
    current = rotated.json  # what the legitimate client now holds
    assert client.get(ME, headers=_bearer(current["access_token"])).status_code == 200

    replay = client.post(REFRESH, headers=_bearer(account.refresh_token))  # the stolen copy
    assert replay.status_code == 401

    assert client.post(REFRESH, headers=_bearer(current["refresh_token"])).status_code == 401
    assert client.get(ME, headers=_bearer(current["access_token"])).status_code == 401
    assert client.get(ME, headers=account.headers).status_code == 401
    # A separate login (another device) is another family.
    assert client.get(ME, headers=_bearer(other_login["access_token"])).status_code == 200
    assert client.post(REFRESH, headers=_bearer(other_login["refresh_token"])).status_code == 200


def test_logout_ends_the_family(client):
    account = register_and_login(client)
    rotated = client.post(REFRESH, headers=_bearer(account.refresh_token)).json
    assert client.post("/api/v1/auth/logout", headers=account.headers).status_code == 204
    assert client.get(ME, headers=_bearer(rotated["access_token"])).status_code == 401
    assert client.post(REFRESH, headers=_bearer(rotated["refresh_token"])).status_code == 401
