"""Prometheus metrics of a consumer, named by the Prometheus rules.

One registry per consumer loop (not the global one), so several loops can live in one
process (tests) and ``--metrics-port`` serves exactly this consumer's metrics. Labels
are low-cardinality only: topic, partition, reason; never a subject id.

>>> m = ConsumerMetrics()
>>> m.records.labels(topic="t", partition="0").inc()
>>> m.value("onlinenmf_records_consumed_total", topic="t", partition="0")
1.0
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["ConsumerMetrics"]

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ConsumerMetrics:
    """The metrics of one consumer loop, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "onlinenmf_records_consumed", "Input records handled (learned or dead-lettered).",
            ["topic", "partition"], registry=r)
        self.learned = Counter(
            "onlinenmf_samples_learned", "Samples learned by the model.",
            ["topic", "partition"], registry=r)
        self.dead_letters = Counter(
            "onlinenmf_dead_letters", "Records sent to the dead-letter topic, by reason.",
            ["topic", "reason"], registry=r)
        self.outputs = Counter(
            "onlinenmf_output_records", "Records produced to output topics.", ["topic"],
            registry=r)
        self.output_errors = Counter(
            "onlinenmf_output_errors", "Output records whose delivery failed.", registry=r)
        self.lag = Gauge(
            "onlinenmf_consumer_lag_records", "High-water mark minus next offset to process.",
            ["topic", "partition"], registry=r)
        self.loss = Histogram(
            "onlinenmf_sample_loss", "Per-sample loss (beta-divergence) under the model.",
            buckets=(0.01, 0.1, 1, 10, 100, 1e3, 1e4, 1e5, 1e6), registry=r)
        self.components = Gauge(
            "onlinenmf_model_components", "Number of components (rank) of the model.",
            registry=r)
        self.model_version = Gauge(
            "onlinenmf_model_version", "Model version (+1 per dictionary refresh).", registry=r)
        self.refreshes = Counter(
            "onlinenmf_model_refreshes", "Dictionary refreshes seen by this process.", registry=r)
        self.checkpoint_seconds = Histogram(
            "onlinenmf_checkpoint_duration_seconds",
            "Time to write one checkpoint (flush outputs, snapshot, fsync, rename).",
            buckets=_FAST, registry=r)
        self.checkpoint_bytes = Gauge(
            "onlinenmf_checkpoint_size_bytes", "Size of the last checkpoint file.", registry=r)
        self.last_checkpoint = Gauge(
            "onlinenmf_last_checkpoint_timestamp_seconds", "Unix time of the last checkpoint.",
            registry=r)
        self.commit_seconds = Histogram(
            "onlinenmf_commit_duration_seconds", "Time to commit offsets to Kafka.",
            buckets=_FAST, registry=r)
        self.commit_failures = Counter(
            "onlinenmf_commit_failures", "Offset commits that failed (the checkpoint still holds).",
            registry=r)
        self.batch_seconds = Histogram(
            "onlinenmf_batch_processing_seconds", "Time to process one poll batch.",
            buckets=_FAST, registry=r)
        self.rebalances = Counter(
            "onlinenmf_rebalances", "Partition assignment changes, by kind.", ["kind"],
            registry=r)
        self.assigned = Gauge(
            "onlinenmf_assigned_partitions", "Partitions currently assigned.", registry=r)
        self.rollbacks = Counter(
            "onlinenmf_rollbacks", "Returns to the last checkpoint (lost partitions, failed "
            "output delivery).", registry=r)
        self.paused = Gauge(
            "onlinenmf_paused", "1 while input partitions are paused for backpressure.",
            registry=r)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose ``/metrics`` over HTTP on ``port`` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)

    def value(self, name: str, **labels: str) -> float | None:
        """Current value of one sample (for tests and ``inspect``), or None."""
        return self.registry.get_sample_value(name, labels)
