"""Webhook deliveries: `hub.user-events` to users' endpoints, signed per Standard Webhooks
(docs/webhooks.md)."""
