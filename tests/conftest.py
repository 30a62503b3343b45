"""Shared pytest configuration. Add sections below; keep each one's owner in its header."""

# --- Engine (lead): one BLAS thread, as `make test` sets it, also for direct pytest runs ------
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# --- Kafka (consumers/ work): broker fixtures, see tests/kafka_broker.py -------------------
from tests.kafka_broker import kafka_broker, private_broker  # noqa: F401, E402


def pytest_report_header(config):
    """Which brokers the Kafka tests run against, and why Apache Kafka's cases would skip."""
    from consumers.apache_kafka import kafka_version
    from tests.kafka_broker import BROKERS_ENV, apache_unavailable, selected_brokers

    kinds = selected_brokers()
    line = f"kafka brokers ({BROKERS_ENV}): {', '.join(kinds)}"
    if "apache" in kinds:
        problem = apache_unavailable()
        line += (f"; Apache Kafka {kafka_version()}" if problem is None
                 else f"; WARNING: the Apache Kafka cases will SKIP: {problem}")
    return line
