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

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["BatchHistogram", "ConsumerMetrics"]

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BatchHistogram(Collector):
    """A histogram without labels that takes its observations a batch at a time.

    The consumer observes one loss per record; ``prometheus_client``'s ``Histogram.observe``
    takes a lock and walks the buckets in Python each time (about 0.7 µs). Here a poll
    batch's values are added under one lock (:meth:`observe_many`). Exposed as a standard
    Prometheus histogram (``_bucket``, ``_count``, ``_sum``); a NaN is counted in no bucket
    and added to the sum, as ``Histogram.observe`` does.

    >>> r = CollectorRegistry()
    >>> h = BatchHistogram("x", "An example.", buckets=(1, 10), registry=r)
    >>> h.observe_many([0.5, 3.0, 30.0])
    >>> h.observe(10.0)
    >>> [r.get_sample_value("x_bucket", {"le": le}) for le in ("1.0", "10.0", "+Inf")]
    [1.0, 3.0, 4.0]
    >>> r.get_sample_value("x_count"), r.get_sample_value("x_sum")
    (4.0, 43.5)
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = sorted(float(b) for b in buckets)
        if self._bounds[-1] != math.inf:
            self._bounds.append(math.inf)
        self._counts = [0] * len(self._bounds)  # per bucket, not cumulative
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.observe_many((value,))

    def observe_many(self, values: Iterable[float]) -> None:
        """Add several observations at once (a value equal to a bound falls in its bucket)."""
        bounds, top = self._bounds, len(self._bounds)
        with self._lock:
            counts = self._counts
            for value in values:
                self._sum += value
                i = bisect_left(bounds, value)
                if i < top and value == value:  # (a NaN sorts nowhere: counted nowhere)
                    counts[i] += 1

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The histogram as Prometheus reads it (cumulative buckets, count, sum)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, n in zip(self._bounds, counts):
            cumulative += n
            buckets.append((floatToGoString(bound), float(cumulative)))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets,
                                    sum_value=total)


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
        # observed a poll batch at a time (BatchHistogram: one lock per batch, not per record)
        self.loss = BatchHistogram(
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
