"""The SDK's verify_webhook: a delivery signed by the server's code (and the specification's
test vector) verifies; a changed body, another secret, a stale timestamp or missing headers do
not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from mlsp import InvalidWebhook, verify_webhook
from shared.webhooks import secrets, signing

pytestmark = [pytest.mark.no_db]

BODY = b'{"type":"job.succeeded","timestamp":"2026-12-06T10:00:00Z","data":{"id":"j1"}}'


def signed(secret: str, body: bytes = BODY, at: datetime | None = None) -> dict[str, str]:
    return signing.signed_headers(secret, "msg-1", at or datetime.now(UTC), body)


def test_a_signed_delivery_verifies_and_gives_the_event():
    secret = secrets.new_secret()
    event = verify_webhook(secret, signed(secret), BODY)
    assert event == {
        "type": "job.succeeded",
        "timestamp": "2026-12-06T10:00:00Z",
        "data": {"id": "j1"},
    }
    # Header names in any case, as web frameworks hand them over; the body as text works too.
    upper = {k.title(): v for k, v in signed(secret).items()}
    assert verify_webhook(secret, upper, BODY.decode())["data"] == {"id": "j1"}


def test_the_specification_vector_verifies():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    at = datetime.now(UTC)
    body = b'{"test": 2432232314}'
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", at, body),
    }
    assert verify_webhook(secret, headers, body) == {"test": 2432232314}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda secret, h, b: (secrets.new_secret(), h, b),  # another endpoint's secret
        lambda secret, h, b: (secret, h, b.replace(b"j1", b"j2")),  # a changed body
        lambda secret, h, b: (secret, {**h, "webhook-id": "msg-2"}, b),  # another id
        lambda secret, h, b: (secret, {k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda secret, h, b: (secret, {**h, "webhook-signature": "v1,AAAA"}, b),
    ],
)
def test_tampered_deliveries_are_refused(tamper):
    secret = secrets.new_secret()
    with pytest.raises(InvalidWebhook):
        verify_webhook(*tamper(secret, signed(secret), BODY))


def test_a_replayed_old_delivery_is_refused():
    secret = secrets.new_secret()
    old = datetime.now(UTC) - timedelta(minutes=10)
    with pytest.raises(InvalidWebhook, match=r"(?i)timestamp"):
        verify_webhook(secret, signed(secret, at=old), BODY)
