"""Webhooks' pure parts: the signature against the Standard Webhooks test vector and the
`standardwebhooks` verifier, which addresses count as public, URL rules, the retry schedule,
secrets encrypted at rest."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.config import Settings
from shared.webhooks import addresses, schedule, secrets, signing

pytestmark = [pytest.mark.no_db]

# The vector the specification's reference libraries are tested with.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_spec_vector():
    at = datetime.fromtimestamp(VECTOR_TS, UTC)
    headers = signing.signed_headers(VECTOR_SECRET, VECTOR_ID, at, VECTOR_BODY)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_signed_headers_verify_with_the_reference_verifier():
    secret = secrets.new_secret()
    body = b'{"type": "job.succeeded", "data": {"id": "x"}}'
    headers = signing.signed_headers(secret, "abc", datetime.now(UTC), body)
    assert Webhook(secret).verify(body, headers) == {"type": "job.succeeded", "data": {"id": "x"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(secrets.new_secret()).verify(body, headers)  # another endpoint's secret
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)  # a changed body


def test_new_secret_is_whsec_and_24_plus_random_bytes():
    one, two = secrets.new_secret(), secrets.new_secret()
    assert one.startswith("whsec_") and one != two
    assert len(base64.b64decode(one.removeprefix("whsec_"))) >= 24


def test_secret_encrypted_at_rest_and_keys_rotate():
    secret = secrets.new_secret()
    old = Settings(WEBHOOK_ENCRYPTION_KEY="old-key-" + "x" * 32)
    stored = secrets.encrypt(secret, old)
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert secrets.decrypt(stored, old) == secret
    rotated = Settings(WEBHOOK_ENCRYPTION_KEY="new-key-" + "y" * 32 + ",old-key-" + "x" * 32)
    assert secrets.decrypt(stored, rotated) == secret  # old rows still open
    with pytest.raises(secrets.SecretUnreadable):
        secrets.decrypt(stored, Settings(WEBHOOK_ENCRYPTION_KEY="another-" + "z" * 32))
    # No dedicated key: one derived from SECRET_KEY.
    derived = Settings(SECRET_KEY="s" * 40)
    assert secrets.decrypt(secrets.encrypt(secret, derived), derived) == secret


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "ff02::1",
    ],
)
def test_non_public_addresses(address):
    assert not addresses.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses(address):
    assert addresses.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.7/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://localhost/hook",
    ],
)
def test_private_targets_refused_unless_allowed(url):
    with pytest.raises(addresses.Refused, match="non-public"):
        addresses.check(url, allow_http=False, allow_private=False)
    target, resolved = addresses.check(url, allow_http=False, allow_private=True)
    assert resolved and target.scheme == "https"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "https"),
        ("ftp://example.com/hook", "https"),
        ("https:///hook", "no host"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://example.com:99999/", "malformed"),
        ("https://" + "a" * 2100 + ".com/", "longer"),
    ],
)
def test_malformed_or_plain_http_urls_refused(url, reason):
    with pytest.raises(addresses.Refused, match=reason):
        addresses.parse(url, allow_http=False)


def test_http_allowed_by_setting_and_url_parts():
    target = addresses.parse("http://hooks.example.com:8080/a/b?x=1", allow_http=True)
    assert target == addresses.Target("http", "hooks.example.com", 8080, "/a/b?x=1")
    assert addresses.parse("https://h.example/", allow_http=False).port == 443


def test_retry_schedule_backs_off_with_jitter_for_24h():
    expected = [5, 30, 120, 600, 1800, 3600, 7200, 7200]
    for attempt, base in enumerate(expected, start=1):
        delay = schedule.retry_delay(attempt).total_seconds()
        assert base <= delay <= base * 1.2
    created = datetime(2026, 1, 1, tzinfo=UTC)
    assert schedule.next_attempt(created, created + timedelta(hours=1), 6) is not None
    assert schedule.next_attempt(created, created + timedelta(hours=23, minutes=59), 12) is None
    assert schedule.retry_delay(1, scale=0.01).total_seconds() <= 0.06
