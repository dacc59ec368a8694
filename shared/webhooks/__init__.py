"""Webhooks: the one owner of the `webhook_endpoints` and `webhook_deliveries` rows.

`table` declares them, `secrets` makes and encrypts signing secrets, `signing` signs a message as
Standard Webhooks does, `addresses` decides which receiver addresses may be called, `events`
renders an event's body from the job, batch or model it is about.
"""

from shared.webhooks.table import (
    DELIVERY_STATUSES,
    EVENTS,
    TEST_EVENT,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = ["DELIVERY_STATUSES", "EVENTS", "TEST_EVENT", "WebhookDelivery", "WebhookEndpoint"]
