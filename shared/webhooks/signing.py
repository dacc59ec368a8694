"""A delivery's headers, signed as the Standard Webhooks specification says: `webhook-id`,
`webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` + base64 of HMAC-SHA256 over
`{id}.{timestamp}.{body}`, keyed by the secret's base64-decoded bytes). The signature itself is
the `standardwebhooks` package's, the reference implementation receivers verify with."""

from __future__ import annotations

from datetime import datetime

from standardwebhooks.webhooks import Webhook


def signed_headers(secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The headers of one attempt: the id never changes across attempts, the time is the
    attempt's (receivers refuse stale timestamps)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }
