"""Shared pytest configuration. Add sections below; keep each one's owner in its header."""

# --- Engine (lead): one BLAS thread, as `make test` sets it, also for direct pytest runs ------
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# --- Kafka (consumers/ work): broker fixtures, see tests/kafka_broker.py -------------------
from tests.kafka_broker import kafka_broker, private_broker  # noqa: F401
