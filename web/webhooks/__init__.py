"""Webhooks over HTTP: a user's receiver endpoints, their delivery log, test events and manual
redelivery (docs/webhooks.md). Deliveries themselves are the webhooks worker's
(workers/webhooks/)."""
