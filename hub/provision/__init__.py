"""Provisioning of the local Kafka broker and MongoDB-compatible server for dev, tests and CI."""
