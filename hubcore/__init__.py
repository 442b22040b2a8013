"""Core shared by connectors, streams and gateway: settings, logging, Kafka and store access."""
