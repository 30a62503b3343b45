"""The consumer's batched loss histogram against prometheus_client's own Histogram."""

import math

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from consumers.metrics import BatchHistogram, ConsumerMetrics

BUCKETS = (0.01, 0.1, 1, 10, 100, 1e3, 1e4, 1e5, 1e6)
# on the bounds, between them, below the first, above the last, negative, NaN, infinite
VALUES = [0.01, 0.0, -3.0, 0.5, 1.0, 7.25, 100.0, 2e5, 1e6, 3e9, math.inf, math.nan, 12.0]


def _exposition(registry: CollectorRegistry) -> list[str]:
    # (prometheus_client's Histogram adds a _created sample; the batched one has none)
    return [line for line in generate_latest(registry).decode().splitlines()
            if "_created" not in line]


def test_batched_observations_expose_what_one_by_one_observations_do():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batched = BatchHistogram("loss", "Loss.", buckets=BUCKETS, registry=ours)
    reference = Histogram("loss", "Loss.", buckets=BUCKETS, registry=theirs)
    for value in VALUES:
        reference.observe(value)
    batched.observe_many(VALUES[:5])
    batched.observe_many([])
    batched.observe(VALUES[5])
    batched.observe_many(iter(VALUES[6:]))
    assert _exposition(ours) == _exposition(theirs)


def test_consumer_loss_histogram_counts_every_finite_observation():
    m = ConsumerMetrics()
    m.loss.observe_many([1.0, 2.0, 50.0])
    assert m.value("onlinenmf_sample_loss_count") == 3
    assert m.value("onlinenmf_sample_loss_sum") == 53.0
    assert m.value("onlinenmf_sample_loss_bucket", le="10.0") == 2
