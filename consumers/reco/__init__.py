"""The rating stream kind: rating events -> predictions and top-N recommendations.

Same shape as every kind: ``schema`` (topics, input schema), ``application`` (the
:class:`~consumers.loop.ConsumerLoop` application), ``producer`` (``onlinenmf produce``),
``flags`` (its ``onlinenmf consume`` options); registered in :mod:`consumers.kinds`.
"""

from consumers.reco.application import PredictionRecord, RecoApp, RecommendationRecord
from consumers.reco.schema import TOPICS, Rating, RatingMessage, decode_rating, encode_rating

__all__ = ["TOPICS", "RecoApp", "PredictionRecord", "RecommendationRecord", "Rating",
           "RatingMessage", "decode_rating", "encode_rating"]
