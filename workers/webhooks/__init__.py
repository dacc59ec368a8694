"""Webhook deliveries (the `webhooks` worker, queue Settings.webhook_queue): `outbox` claims due
rows of the outbox and records each attempt's outcome, `sender` makes one HTTP attempt to the
checked address, `delivery` runs an attempt end to end, `tasks` are the thin Celery tasks."""
