"""The microbiome stream kind: samples of taxa counts -> community weights.

Same shape as every kind: ``schema`` (topics, input schema), ``application`` (the
:class:`~consumers.loop.ConsumerLoop` application), ``producer`` (``onlinenmf produce``),
``flags`` (its ``onlinenmf consume`` options); registered in :mod:`consumers.kinds`. Its
``supervised`` module is the supervised mode (``--label``): the application learning a class
for each sample besides its communities.
"""

from consumers.microbiome.application import (
    CommunityRecord,
    MicrobiomeApp,
    ModelRecord,
    model_from_blobs,
    w_sha256,
)
from consumers.microbiome.schema import TOPICS, Sample, SampleMessage, decode_sample, encode_sample

__all__ = ["TOPICS", "MicrobiomeApp", "CommunityRecord", "ModelRecord", "Sample",
           "SampleMessage", "decode_sample", "encode_sample", "model_from_blobs", "w_sha256"]
