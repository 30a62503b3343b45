"""Shared pytest configuration. Add sections below; keep each one's owner in its header."""

# --- Kafka (consumers/ work): broker fixtures, see tests/kafka_broker.py -------------------
from tests.kafka_broker import kafka_broker, private_broker  # noqa: F401
