"""Checking a webhook delivery in a receiver: `verify_webhook(secret, headers, body)`.

Deliveries are signed as the Standard Webhooks specification says; the check is that
specification's reference implementation (the `standardwebhooks` package): the HMAC-SHA256 of
`{webhook-id}.{webhook-timestamp}.{body}` keyed by the secret, compared in constant time, and a
timestamp within 5 minutes of now (a replayed old delivery fails).

    from flask import Flask, request
    from mlsp import InvalidWebhook, verify_webhook

    app = Flask(__name__)

    @app.post("/hooks/mlsp")
    def hook():
        try:
            event = verify_webhook(SECRET, request.headers, request.get_data())
        except InvalidWebhook:
            return "", 400
        ...  # deduplicate on request.headers["webhook-id"]: a delivery may come twice
        return "", 204
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class InvalidWebhook(Exception):
    """The request is not a delivery signed with this secret (or is older than 5 minutes)."""


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes | str) -> dict[str, Any]:
    """The event (`{type, timestamp, data}`) of a delivery whose signature checks out with
    `secret` (the `whsec_...` value shown when the endpoint was created); InvalidWebhook
    otherwise. Pass the body exactly as received, before any JSON parsing."""
    try:
        event = Webhook(secret).verify(body, dict(headers.items()))
    except WebhookVerificationError as exc:
        raise InvalidWebhook(str(exc)) from None
    except ValueError as exc:  # a body that is not JSON, a malformed secret
        raise InvalidWebhook(f"not a webhook delivery: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidWebhook("the body is not an event object")
    return event
