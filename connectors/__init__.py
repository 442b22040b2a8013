"""Connectors: platform webhooks and pollers that put raw messages durably into Kafka."""
