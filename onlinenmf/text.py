"""Topics of a text stream: a streaming vectoriser fit for topic models, and the engine behind it.

:class:`TextVectorizer` turns one document into ``{word: weight}`` for
:class:`onlinenmf.engine.OnlineNMF`:

- tokens: river's :class:`~river.feature_extraction.BagOfWords` (lowercase, accents stripped)
  with words of two or more letters (no digits: years and sums make incoherent topics) and
  English stop words (:data:`STOP_WORDS`, scikit-learn's 318-word Glasgow list);
- a vocabulary that grows with bounded memory (:class:`Vocabulary`): a word is admitted once it
  has been seen in ``min_df`` documents; until then its document frequency is counted by lossy
  counting (Manku & Motwani 2002), which forgets words too rare to ever be admitted, so the
  candidates stay bounded however long the stream; past ``max_words`` admitted words, the ones
  in the fewest documents are pruned: no longer sent to the model, and their rows of W and
  of its statistics removed (:meth:`TopicModel.remove_pruned`), so the model's memory is
  bounded too;
- a weighting: raw ``counts``, ``log`` counts (``1 + log tf``) or running ``tfidf`` (``tf *
  idf ** idf_power`` with the idf of the document frequencies so far; squared by default,
  :data:`IDF_POWER`).

:class:`TopicModel` is the vectoriser and an :class:`~onlinenmf.engine.OnlineNMF` together: text
in, topic mix out; its defaults were chosen by coherence on the State of the Union stream
(``benchmarks/bench_text.py``, ``benchmarks/output/text.md``). Its :class:`TopicWatch` turns
the topics' splits and top-word shifts into events of the engine's log; :class:`TopicStream`
follows the topics over time (prevalence per time bin, with :func:`eras`).

>>> model = TopicModel(n_components=2, min_df=1, seed=0)
>>> mix = model.learn_one("Gold and silver currency; the banks hold gold.")
>>> model.vectorizer.transform_one("The gold of the banks")
{'gold': 1.0, 'banks': 1.0}
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import msgspec
import numpy as np

from onlinenmf.engine import OnlineNMF

__all__ = ["IDF_POWER", "STOP_WORDS", "TOPIC_EVENTS", "WEIGHTINGS", "TextVectorizer", "TopicModel",
           "TopicStream", "TopicWatch", "Vocabulary", "eras", "polysemous", "removal_batch",
           "tokenize", "tokens"]

#: English stop words: the 318 words of scikit-learn's ``ENGLISH_STOP_WORDS`` (the Glasgow
#: Information Retrieval Group's list; scikit-learn is BSD-3-licensed, as this project), kept
#: here as data rather than a core dependency on scikit-learn for one fixed list (river has
#: none); tests/test_text.py checks the copy against scikit-learn's, a test dependency.
STOP_WORDS: frozenset[str] = frozenset("""
    a about above across after afterwards again against all almost alone along already also
    although always am among amongst amoungst amount an and another any anyhow anyone
    anything anyway anywhere are around as at back be became because become becomes becoming
    been before beforehand behind being below beside besides between beyond bill both bottom
    but by call can cannot cant co con could couldnt cry de describe detail do done down due
    during each eg eight either eleven else elsewhere empty enough etc even ever every
    everyone everything everywhere except few fifteen fifty fill find fire first five for
    former formerly forty found four from front full further get give go had has hasnt have
    he hence her here hereafter hereby herein hereupon hers herself him himself his how
    however hundred i ie if in inc indeed interest into is it its itself keep last latter
    latterly least less ltd made many may me meanwhile might mill mine more moreover most
    mostly move much must my myself name namely neither never nevertheless next nine no
    nobody none noone nor not nothing now nowhere of off often on once one only onto or
    other others otherwise our ours ourselves out over own part per perhaps please put
    rather re same see seem seemed seeming seems serious several she should show side since
    sincere six sixty so some somehow someone something sometime sometimes somewhere still
    such system take ten than that the their them themselves then thence there thereafter
    thereby therefore therein thereupon these they thick thin third this those though three
    through throughout thru thus to together too top toward towards twelve twenty two un
    under until up upon us very via was we well were what whatever when whence whenever
    where whereafter whereas whereby wherein whereupon wherever whether which while whither
    who whoever whole whom whose why will with within without would yet you your yours
    yourself yourselves
""".split())

#: Words of two or more letters, hyphenated compounds kept whole ("fellow-citizens").
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}(?:-[^\W\d_]+)*\b"

#: The weightings of :class:`TextVectorizer`.
WEIGHTINGS = ("counts", "log", "tfidf")

#: The power of the idf in the ``tfidf`` weighting (``tf * idf ** IDF_POWER``), the default.
#: Squared, the words common to many documents weigh less against the specific ones than in
#: plain TF-IDF: in a one-pass fit they otherwise reach the top words of most topics (on the
#: State of the Union stream: NPMI 0.174 with power 1, 0.196-0.212 with 1.5 to 2.5; power 2
#: holds best on both halves of the stream; ``benchmarks/output/text_grid.md``). Its cost: a
#: word in its first documents weighs up to the square of the largest idf, so at ``min_df=1``
#: a new topic's first documents can raise the engine's loss alarm, which re-seeds the least
#: used topic (a planted stream of tests/test_text_events.py: two seeds of three; at the
#: default ``min_df=5``, or with ``idf_power=1``, none); and with short memories
#: (``forget_factor=None`` ends on 33 documents here) the topics are of the latest
#: documents' rarest words (NPMI 0.117 over three seeds, one of them collapsed).
IDF_POWER = 2.0

#: Per-document normalisations of :class:`TextVectorizer` (None: none).
NORMS = (None, "l1", "l2")


@functools.cache
def _bag():
    """River's tokeniser, built on first use: importing river.feature_extraction takes about a
    second (it imports river.tree), which every ``onlinenmf`` command would otherwise pay."""
    from river.feature_extraction import BagOfWords

    return BagOfWords(stop_words=set(STOP_WORDS), tokenizer_pattern=TOKEN_PATTERN)


def tokens(text: str) -> list[str]:
    """The words of one document in order, stop words removed.

    >>> tokens("The Treaty with Mexico, and the treaty of 1848.")
    ['treaty', 'mexico', 'treaty']
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    return list(_bag().process_text(text))


def tokenize(text: str) -> dict[str, int]:
    """Word counts of one document, stop words removed.

    >>> tokenize("The Treaty with Mexico, and the treaty of 1848.")
    {'treaty': 2, 'mexico': 1}
    """
    return dict(Counter(tokens(text)))


class Vocabulary:
    """The admitted words of a stream, in bounded memory.

    Parameters
    ----------
    min_df
        A word is admitted once seen in this many documents.
    max_words
        At most this many admitted words; beyond, those in the fewest documents are pruned.
    bucket_docs
        Lossy counting's bucket width: every ``bucket_docs`` documents, candidates seen too
        rarely to have reached ``min_df`` are forgotten. A word seen in ``min_df`` documents
        within a few buckets is always admitted; the candidates number at most about
        ``bucket_docs * log(n_docs / bucket_docs)`` distinct words per document.

    >>> vocab = Vocabulary(min_df=2, bucket_docs=2)
    >>> [vocab.update({"a", "b"}), vocab.update({"a"}), vocab.update({"c"}), vocab.update({"b"})]
    [[], ['a'], [], []]
    >>> sorted(vocab.candidates), vocab.admitted
    ([], {'a': 2})
    """

    def __init__(self, min_df: int = 5, max_words: int = 20_000, bucket_docs: int = 2_000):
        for name, value in (("min_df", min_df), ("max_words", max_words),
                            ("bucket_docs", bucket_docs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.min_df, self.max_words, self.bucket_docs = min_df, max_words, bucket_docs
        self.n_docs = 0
        #: candidate -> [count since first seen, undercount bound (lossy counting's delta)]
        self.candidates: dict[str, list[int]] = {}
        #: admitted word -> documents seen in (estimated from below until admitted)
        self.admitted: dict[str, int] = {}
        #: words pruned since :meth:`drain_pruned` was last called
        self.pruned: list[str] = []
        self._floor = 0

    def update(self, words: Iterable[str]) -> list[str]:
        """Count one document's distinct words; return the words it admitted."""
        self.n_docs += 1
        bucket = math.ceil(self.n_docs / self.bucket_docs)
        new = []
        for word in words:
            if word in self.admitted:
                self.admitted[word] += 1
                continue
            entry = self.candidates.setdefault(word, [0, bucket - 1])
            entry[0] += 1
            if entry[0] >= self.min_df and entry[0] > self._least_admitted():
                self.admitted[word] = entry[0]  # seen in at least this many
                del self.candidates[word]
                new.append(word)
        if self.n_docs % self.bucket_docs == 0:  # lossy counting: forget the rare candidates
            self.candidates = {w: e for w, e in self.candidates.items() if e[0] + e[1] > bucket}
        if len(self.admitted) > self.max_words:
            self._prune()
        return new

    def _prune(self) -> None:
        # fewest documents first; among equals the newest first, so that the vocabulary does
        # not churn. A pruned word is a candidate again with its count: it comes back once it
        # has been seen in more documents than the least of the admitted.
        newest_first = list(reversed(self.admitted))
        order = sorted(newest_first, key=self.admitted.__getitem__)
        for word in order[: len(self.admitted) - self.max_words]:
            self.candidates[word] = [self.admitted.pop(word), 0]
            self.pruned.append(word)
        self._floor = min(self.admitted.values())

    def _least_admitted(self) -> int:
        """When the vocabulary is full, the documents a candidate must exceed to be admitted:
        those of the least frequent admitted word at the last pruning (admitted counts only
        grow, so a candidate under it would be pruned straight back); else 0."""
        return self._floor if len(self.admitted) >= self.max_words else 0

    def drain_pruned(self) -> list[str]:
        """The words pruned since the last call (each once)."""
        pruned, self.pruned = self.pruned, []
        return pruned

    def state(self) -> dict[str, Any]:
        return {"min_df": self.min_df, "max_words": self.max_words,
                "bucket_docs": self.bucket_docs, "n_docs": self.n_docs,
                "candidates": self.candidates, "admitted": self.admitted,
                "pruned": self.pruned, "floor": self._floor}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Vocabulary:
        vocab = cls(state["min_df"], state["max_words"], state["bucket_docs"])
        vocab.n_docs = int(state["n_docs"])
        vocab.candidates = {w: list(e) for w, e in state["candidates"].items()}
        vocab.admitted = dict(state["admitted"])
        vocab.pruned = list(state["pruned"])
        vocab._floor = int(state["floor"])
        return vocab


def removal_batch(max_words: int) -> int:
    """Pruned words that wait before :meth:`TopicModel.remove_pruned` removes them from the
    engine: a sixteenth of the vocabulary (at least 1), so the engine holds at most
    ``max_words + removal_batch(max_words) - 1`` words' rows.

    >>> removal_batch(20_000), removal_batch(10)
    (1250, 1)
    """
    return max(1, max_words // 16)


class TextVectorizer:
    """One document -> ``{word: weight}`` over a growing, bounded vocabulary.

    Parameters
    ----------
    weighting
        ``"counts"`` (term counts), ``"log"`` (``1 + log tf``) or ``"tfidf"`` (``tf * idf **
        idf_power``, ``idf = 1 + log((1 + n) / (1 + df))`` with the document frequencies of
        the ``n`` documents learned so far: scikit-learn's smoothed idf).
    min_df, max_words, bucket_docs
        The vocabulary's bounds (:class:`Vocabulary`).
    norm
        Scale each document's weights to unit ``"l1"`` or ``"l2"`` norm (None: as weighted).
    idf_power
        The power of the idf in the ``"tfidf"`` weighting (:data:`IDF_POWER`; 1: plain TF-IDF).

    >>> vec = TextVectorizer(weighting="log", min_df=1)
    >>> vec.learn_transform_one("war war war peace")
    {'war': 2.09861..., 'peace': 1.0}
    """

    def __init__(self, weighting: str = "counts", min_df: int = 5, max_words: int = 20_000,
                 bucket_docs: int = 2_000, norm: str | None = None,
                 idf_power: float = IDF_POWER):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, "
                             f"got {weighting!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if (not isinstance(idf_power, int | float) or isinstance(idf_power, bool)
                or not math.isfinite(idf_power) or idf_power <= 0):
            raise ValueError(f"idf_power must be a positive number, got {idf_power!r}")
        self.weighting, self.norm, self.idf_power = weighting, norm, float(idf_power)
        self.vocabulary = Vocabulary(min_df, max_words, bucket_docs)

    def learn_one(self, text: str) -> None:
        """Count the document's words (admitting those now frequent enough)."""
        self.vocabulary.update(tokenize(text))

    def transform_one(self, text: str) -> dict[str, float]:
        """The document's admitted words, weighted (empty when it has none)."""
        return self.weigh(tokenize(text))

    def learn_transform_one(self, text: str) -> dict[str, float]:
        """:meth:`learn_one`, then :meth:`transform_one`, tokenising once."""
        counts = tokenize(text)
        self.vocabulary.update(counts)
        return self.weigh(counts)

    def weigh(self, counts: Mapping[str, int]) -> dict[str, float]:
        """Weights of the admitted words of a document's counts."""
        admitted = self.vocabulary.admitted
        kept = {w: c for w, c in counts.items() if w in admitted}
        if self.weighting == "counts":
            weights = {w: float(c) for w, c in kept.items()}
        elif self.weighting == "log":
            weights = {w: 1.0 + math.log(c) for w, c in kept.items()}
        else:
            n, power = self.vocabulary.n_docs, self.idf_power
            weights = {w: c * (1.0 + math.log((1 + n) / (1 + admitted[w]))) ** power
                       for w, c in kept.items()}
        if self.norm is None or not weights:
            return weights
        scale = (math.fsum(v * v for v in weights.values()) ** 0.5 if self.norm == "l2"
                 else math.fsum(weights.values()))
        return {w: v / scale for w, v in weights.items()}


class TopicModel:
    """Topics of a text stream: :class:`TextVectorizer` into :class:`OnlineNMF`.

    Parameters
    ----------
    n_components
        Number of topics.
    weighting, min_df, max_words, bucket_docs, norm, idf_power
        The vectoriser's (:class:`TextVectorizer`).
    beta, forget_factor, init, **params
        The engine's (:class:`~onlinenmf.engine.OnlineNMF`); ``seed`` seeds both.

    The defaults (running TF-IDF with the idf squared, beta = 2, no forgetting, the first
    dictionary from a core profile plus residuals) were chosen by coherence on the State of
    the Union stream (``benchmarks/output/text_grid.md``, three seeds each; NPMI of the top
    10 words): 0.196 at -7.84 nats per held-out word, against 0.174 with plain TF-IDF
    (``idf_power=1``, the default before), 0.197 with ``idf_power=1.5`` and 0.212 with 2.5
    (-7.89). The power was chosen on both halves of the stream too (early and late
    addresses, each alone): 2 gives 0.203 / 0.148 (batch NMF on TF-IDF: 0.245 / 0.196),
    plain TF-IDF 0.182 / 0.106; 1.5 gave only 0.191 / 0.119 and 2.5 0.219 / 0.152 (scratch
    runs of the same harness at e74e170, not in the file, with the drift slack of then).
    The squared idf is a weighting, not a closer fit: batch NMF on the same weighting reaches 0.267
    (``benchmarks/output/text.md``). Around the defaults: the first dictionary from samples
    0.177; the engine's data-chosen memories (``forget_factor=None``) 0.117, one seed of
    three collapsed (-9.08 nats per held-out word); ``forget_factor=0.9995`` 0.197 at -7.87
    (a model of the latest 2,000 documents rather than of the whole stream); ``l1_h`` 0.05
    or 0.1 (0.194, 0.200, within the seeds' spread) at -7.90 / -7.98; ``min_df`` 3 0.193
    (5 keeps fewer words), 10 0.192; log counts 0.136, counts 0.130, an l2-normalised
    TF-IDF 0.125, KL (beta = 1) 0.054 to 0.068. beta = 1.5 (counts, first dictionary from samples,
    one seed) reaches 0.091 and -8.38 nats per held-out word; it fits at O(m k) per document
    (its zeros have no summary), 28 documents/s: too slow here.

    Each topic is a column of the engine's W: a distribution over words, with a stable id.
    A document with no admitted word is counted by the vocabulary but not learned (its mix is
    empty).
    """

    def __init__(self, n_components: int = 15, *, weighting: str = "tfidf", beta: float = 2,
                 min_df: int = 5, max_words: int = 20_000, bucket_docs: int = 2_000,
                 norm: str | None = None, idf_power: float = IDF_POWER,
                 forget_factor: float | None = 1.0, init: str = "core", seed: int = 0,
                 **params: Any):
        self.vectorizer = TextVectorizer(weighting, min_df, max_words, bucket_docs, norm,
                                         idf_power)
        self.nmf = OnlineNMF(n_components, beta, forget_factor=forget_factor, init=init,
                             seed=seed, **params)
        self.watch = TopicWatch()
        self.docs_learned = 0
        self.last_n_words = 0

    def learn_one(self, text: str, time: float | None = None) -> dict[int, float]:
        """Learn one document; return its topic mix ``{topic id: weight}`` (solved before
        learning it; empty when no admitted word). :attr:`last_n_words` is the number of
        distinct admitted words it had. After a refresh of the dictionary, :attr:`watch`
        looks for topic splits and shifts: events of the engine's log at ``time`` (the
        document's time in the stream, if the caller knows it)."""
        counts = tokenize(text)  # a non-string is refused here, before anything changes
        if time is not None and not (isinstance(time, int | float) and math.isfinite(time)):
            raise ValueError(f"time must be a finite number or None, got {time!r}")
        vocabulary = self.vectorizer.vocabulary
        vocabulary.update(counts)
        if len(vocabulary.pruned) >= removal_batch(vocabulary.max_words):
            self.remove_pruned()
        x = self.vectorizer.weigh(counts)
        self.docs_learned += 1
        self.last_n_words = len(x)
        if not x:
            return {}
        mix = self.nmf.learn_one(x)
        self.watch.check(self.nmf, None if time is None else float(time))
        return mix

    def remove_pruned(self) -> None:
        """The words the vocabulary pruned leave the engine: their rows of W and of its
        statistics (:meth:`~onlinenmf.engine.OnlineNMF.remove_features`), so that the model's
        memory is bounded by the vocabulary's. :meth:`learn_one` calls it once
        :func:`removal_batch` words wait (a removal moves every row: batched, its cost per
        word is small); a waiting word is no longer sent to the engine. A word admitted again
        since it was pruned stays."""
        pending = self.vectorizer.vocabulary.drain_pruned()
        admitted = self.vectorizer.vocabulary.admitted
        known = set(self.nmf.features)
        self.nmf.remove_features([w for w in pending if w in known and w not in admitted])

    def transform_one(self, text: str) -> dict[int, float]:
        """The topic mix of a document, without learning."""
        x = self.vectorizer.transform_one(text)
        return self.nmf.transform_one(x) if x and self.nmf.n_features else {}

    def topics(self, top: int = 10) -> dict[int, list[Hashable]]:
        """Each topic's ``top`` words, strongest first."""
        return {topic: [word for word, _ in words]
                for topic, words in self.nmf.components(top=top).items()}

    def topic_word(self) -> tuple[list[Hashable], np.ndarray]:
        """``(words, W)``: the engine's words and its dictionary (columns sum to 1)."""
        return self.nmf.features, np.asarray(self.nmf.W)

    def to_bytes(self) -> bytes:
        """The model as bytes (the engine's snapshot and the vocabulary's state)."""
        return _ENC.encode({"nmf": self.nmf.to_bytes(), "docs_learned": self.docs_learned,
                            "weighting": self.vectorizer.weighting,
                            "norm": self.vectorizer.norm,
                            "idf_power": self.vectorizer.idf_power,
                            "vocabulary": self.vectorizer.vocabulary.state(),
                            "watch": self.watch.state()})

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> TopicModel:
        """The model :meth:`to_bytes` wrote."""
        state = _DEC.decode(data)
        model = cls.__new__(cls)
        # a model saved before idf_power existed weighs on with the plain idf it learned with
        model.vectorizer = TextVectorizer(state["weighting"], norm=state["norm"],
                                          idf_power=state.get("idf_power", 1.0))
        model.vectorizer.vocabulary = Vocabulary.from_state(state["vocabulary"])
        model.nmf = OnlineNMF.from_bytes(state["nmf"], source=source)
        model.docs_learned = int(state["docs_learned"])
        model.last_n_words = 0
        # a model saved before the watch existed starts watching at its next refresh
        model.watch = TopicWatch.from_state(state.get("watch"))
        return model


#: The event kinds that tell a topic's story (:mod:`onlinenmf.events`): a topic born or
#: retired (a re-seeded column; ``grow`` and ``prune`` under ``adapt_rank``), split from
#: another, or whose top words shifted (:class:`TopicWatch`).
TOPIC_EVENTS = ("birth", "retire", "grow", "prune", "split", "shift")


class TopicWatch:
    """Topic splits and top-word shifts, looked for after each refresh of a topic model's
    dictionary and recorded as events of its engine's log (:mod:`onlinenmf.events`, kinds
    ``split`` and ``shift``): they are in the model's snapshots and travel with the births
    and retirements (the text consumer's records, :meth:`TopicStream.events`, the report).

    - **shift**: a topic keeps its id but fewer than ``shift`` of the ``top`` words it had
      (when first watched, or at its last shift) are still among its ``top`` words. The
      event gives the old and the new top words (``old``, ``new``); the new ones are the
      reference from then on.
    - **split**: a topic born (a new id) whose ``top`` words are at least ``split`` among
      an existing topic's ``2 top`` words just before the birth, and which that topic then
      lost (at most ``1 - split`` of them left among its ``2 top`` words, while the new topic
      holds at least ``split`` of them), within ``patience`` refreshes of the birth: one
      topic became two. The new topic's words are compared with the topics before its birth
      at every check until they match one (within the patience), not only at its first
      check: a re-seeded column's first top words are those of a few samples' residuals,
      not yet its topic's. ``component`` is the new topic, ``old`` the one it split from,
      ``new`` the words it took; the parent's reference becomes its top words then (the
      split explains its change: no shift event for it).

    Topics reshuffle while a model is young: the watch begins once the engine has learned
    ``settle`` documents (None: 16 per topic, past the refits of the first dictionary,
    :mod:`onlinenmf.schedule`).

    >>> watch = TopicWatch(top=3, settle=0)
    >>> class Model:  # what the watch reads of an engine
    ...     from onlinenmf.events import EventLog
    ...     events, samples_learned, model_version, n_components = EventLog(), 0, 1, 1
    ...     tops = {0: ["gold", "silver", "banks", "coin", "war", "navy"]}
    ...     def components(self, top):
    ...         return {t: [(w, 1.0) for w in words[:top]] for t, words in self.tops.items()}
    >>> model = Model()
    >>> watch.check(model, time=1800.0)  # the reference
    []
    >>> model.model_version, model.tops = 2, {0: ["war", "navy", "army", "gold"]}
    >>> [(e.kind, e.component, e.old, e.new, e.time) for e in watch.check(model, 1861.0)]
    [('shift', 0, ['gold', 'silver', 'banks'], ['war', 'navy', 'army'], 1861.0)]
    """

    # patience 40, not 20: a drift event makes the schedule refresh often for a while, and
    # on tests/test_text_events.py's parting topic 20 refreshes passed before the parent
    # lost the words its child took (the split was found at 40 and 100 alike)
    def __init__(self, top: int = 10, shift: float = 0.5, split: float = 0.5,
                 patience: int = 40, settle: int | None = None):
        if not isinstance(top, int) or isinstance(top, bool) or top < 1:
            raise ValueError(f"top must be a positive integer, got {top!r}")
        for name, value in (("shift", shift), ("split", split)):
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")
        self.top, self.shift, self.split = top, float(shift), float(split)
        self.patience, self.settle = int(patience), settle
        self.version = 0  # the model version last checked
        #: topic -> its top words when first watched or at its last shift (or split)
        self.reference: dict[int, list[str]] = {}
        #: topic -> its 2 top words at the last check (None: not watching yet)
        self.previous: dict[int, list[str]] | None = None
        #: new topic not yet matched to a parent -> [the topics' 2 top words just before its
        #: birth, checks waited]
        self.born: dict[int, list[Any]] = {}
        #: new topic -> [the topic it may have split from, the words shared, checks waited]
        self.pending: dict[int, list[Any]] = {}

    def check(self, model: OnlineNMF, time: float | None = None) -> list[Any]:
        """After a refresh (a new ``model_version``), the events of the topics' changes
        since the last check; emitted into ``model.events`` and returned."""
        if model.model_version == self.version:
            return []
        self.version = model.model_version
        settle = (self.settle if self.settle is not None
                  else 16 * int(model.n_components))
        if model.samples_learned < settle:
            return []
        tops = {t: [word for word, _ in pairs]
                for t, pairs in model.components(top=2 * self.top).items()}
        if self.previous is None:  # the first check: the references
            self.reference = {t: words[: self.top] for t, words in tops.items()}
            self.previous = tops
            return []
        self._follow_ids(tops)
        self._parents(tops)
        emit = functools.partial(model.events.emit, sample=model.samples_learned, time=time)
        events = [*self._splits(tops, emit), *self._shifts(tops, emit)]
        self.previous = tops
        return events

    def _follow_ids(self, tops: dict[int, list[str]]) -> None:
        """New topics are watched from now, with the topics as they were just before their
        birth (their possible parents); retired ones no longer."""
        for child in sorted(tops.keys() - self.previous.keys()):
            self.reference[child] = tops[child][: self.top]
            before = {p: words for p, words in self.previous.items() if p in tops}
            if before:
                self.born[child] = [before, 0]
        for gone in self.reference.keys() - tops.keys():
            del self.reference[gone]

    def _parents(self, tops: dict[int, list[str]]) -> None:
        """A split is pending for a new topic once its top words are mostly the top words of
        one topic before its birth. Looked for at every check within the patience, not only
        at the first: the column of a topic born by re-seeding starts from a few samples'
        residuals, whose top words only share part of its topic's head (measured on
        tests/test_text_events.py's parting topic: 4 of its 10 at its first check, below
        the 5 that make a split, 6 at the next, 4 samples later)."""
        for child, (before, waited) in sorted(self.born.items()):
            parents = [p for p in before if p in tops]
            if child not in tops or not parents or waited >= self.patience:
                del self.born[child]
                continue
            words = tops[child][: self.top]
            parent = max(parents, key=lambda p: len(set(words) & set(before[p])))
            shared = [w for w in words if w in set(before[parent])]
            if len(shared) >= self.split * len(words):
                del self.born[child]
                self.pending[child] = [parent, shared, waited]
            else:
                self.born[child][1] += 1

    def _splits(self, tops: dict[int, list[str]], emit) -> list[Any]:
        events = []
        for child, (parent, shared, waited) in sorted(self.pending.items()):
            if child not in tops or parent not in tops or waited >= self.patience:
                del self.pending[child]
                continue
            kept = [w for w in shared if w in set(tops[parent])]
            held = [w for w in shared if w in set(tops[child])]
            if (len(kept) > (1 - self.split) * len(shared)
                    or len(held) < self.split * len(shared)):
                self.pending[child][2] += 1
                continue
            del self.pending[child]
            self.reference[parent] = tops[parent][: self.top]
            moved = [w for w in held if w not in kept]
            events.append(emit("split", component=child, old=parent, new=moved,
                               reason=f"split from topic {parent}: took "
                                      f"{', '.join(moved[:6])} ({len(shared)} of its top "
                                      f"{2 * self.top} words before; it kept {len(kept)})"))
        return events

    def _shifts(self, tops: dict[int, list[str]], emit) -> list[Any]:
        events = []
        for topic, old in self.reference.items():
            new = tops[topic][: self.top]
            still = len(set(old) & set(new))
            if still >= self.shift * len(old):
                continue
            self.reference[topic] = new
            gone = [w for w in old if w not in new]
            came = [w for w in new if w not in old]
            events.append(emit("shift", component=topic, old=old, new=new,
                               reason=f"top {len(old)} words shifted, {still} still there: "
                                      f"{', '.join(gone[:4])} -> {', '.join(came[:4])}"))
        return events

    def state(self) -> dict[str, Any]:
        return {"top": self.top, "shift": self.shift, "split": self.split,
                "patience": self.patience, "settle": self.settle, "version": self.version,
                "reference": self.reference, "previous": self.previous,
                "born": self.born, "pending": self.pending}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> TopicWatch:
        if state is None:
            return cls()
        watch = cls(state["top"], state["shift"], state["split"], state["patience"],
                    state["settle"])
        watch.version = int(state["version"])
        watch.reference = {int(t): list(words) for t, words in state["reference"].items()}
        watch.previous = (None if state["previous"] is None else
                          {int(t): list(words) for t, words in state["previous"].items()})
        # a watch saved before births were matched over several checks has none waiting
        watch.born = {int(t): [{int(p): list(words) for p, words in before.items()}, int(n)]
                      for t, (before, n) in state.get("born", {}).items()}
        watch.pending = {int(t): [int(p), list(words), int(n)]
                         for t, (p, words, n) in state["pending"].items()}
        return watch


class TopicStream:
    """Topics over time: a :class:`TopicModel` whose documents' topic mixes are followed by a
    :class:`~onlinenmf.tracking.Tracker`, the whole stream as one subject.

    Topic ids are the engine's stable ids (a re-seeded topic is a new id, its predecessor
    retired: both are events); documents mixed before the first dictionary (against random
    rows) are not followed; :meth:`prevalence` gives each topic's mean share of the
    documents per time bin, :func:`eras` when each topic emerged, peaked and faded.

    Parameters
    ----------
    model
        The topic model (default: ``TopicModel()``).
    bin_width
        Width of a time bin, in the stream's time unit (days for ISO dates: 3652.5 is a
        decade).
    max_history
        Documents whose mixes are kept (oldest dropped; also bounded by the tracker's
        ``max_history_bytes``).
    window
        Growth rates over this much recent time (the tracker's ``window``): each document
        refits them over the documents in it, so a bounded window bounds the cost.

    >>> stream = TopicStream(TopicModel(n_components=2, min_df=1), bin_width=10)
    >>> for day, text in enumerate(["gold silver banks", "army navy war"] * 10):
    ...     mix = stream.learn_one(text, time=day)
    >>> sorted(stream.prevalence().columns)
    ['bin', 'n_docs', 'share', 'topic']
    """

    SUBJECT = "stream"

    def __init__(self, model: TopicModel | None = None, bin_width: float = 3652.5,
                 max_history: int = 1_000_000, window: float | None = 3652.5):
        from onlinenmf.tracking import Tracker  # pandas: only for topics over time

        self.model = model if model is not None else TopicModel()
        self.bin_width = bin_width
        self.tracker = Tracker(self.model.nmf, max_history=max_history, window=window,
                               bin_width=bin_width, anomaly_z=None, warm_start=False)

    def learn_one(self, text: str, time: Any) -> dict[int, float]:
        """Learn one document at ``time`` (a number, or a timestamp: the tracker's); return
        its topic mix (see :meth:`TopicModel.learn_one`, whose split and shift events carry
        the time)."""
        value = self.tracker._time(time)  # a bad time is refused before anything changes
        version = self.model.nmf.model_version  # the dictionary the mix was solved against
        mix = self.model.learn_one(text, time=value)
        if mix and version:  # before the first dictionary, mixes are of random rows
            self.tracker.observe(self.SUBJECT, time, mix)
        return mix

    def prevalence(self, bin_width: float | None = None):
        """A DataFrame: ``bin`` (start), ``topic``, ``share`` (the topic's mean share of the
        bin's documents) and ``n_docs``."""
        table = self.tracker.population(bin_width or self.bin_width)
        return table.rename(columns={"component": "topic", "mean_share": "share",
                                     "n_samples": "n_docs"})[["bin", "topic", "share",
                                                              "n_docs"]]

    def events(self) -> list[dict[str, Any]]:
        """The topics' births and retirements (re-seeded topics), splits and top-word shifts
        (:class:`TopicWatch`), oldest first, as the tracker mirrors the model's events
        (``kind``, ``component``, ``time``, ``old``, ``new``, ``detail``: the reason)."""
        return [e for e in self.tracker.events if e["kind"] in TOPIC_EVENTS]


def eras(prevalence, threshold: float = 0.05) -> list[dict[str, Any]]:
    """When each topic emerged (first bin whose share reaches ``threshold``), peaked, and
    faded (the first bin after its peak whose share fell under half the threshold; None:
    still there), from :meth:`TopicStream.prevalence`.

    >>> import pandas as pd
    >>> table = pd.DataFrame({"bin": [0, 10, 20, 0, 10, 20], "topic": [1, 1, 1, 2, 2, 2],
    ...                       "share": [0.5, 0.2, 0.01, 0.0, 0.3, 0.6], "n_docs": [4] * 6})
    >>> [(e["topic"], e["emerged"], e["peak"], e["faded"]) for e in eras(table)]
    [(1, 0, 0, 20), (2, 10, 20, None)]
    """
    out = []
    for topic, rows in prevalence.sort_values("bin").groupby("topic", sort=True):
        bins, shares = rows["bin"].to_numpy(), rows["share"].to_numpy()
        present = np.flatnonzero(shares >= threshold)
        if present.size == 0:
            continue
        peak = int(np.argmax(shares))
        gone = np.flatnonzero(shares[peak:] < threshold / 2)
        out.append({"topic": int(topic), "emerged": bins[present[0]].item(),
                    "peak": bins[peak].item(), "peak_share": float(shares[peak]),
                    "faded": bins[peak + gone[0]].item() if gone.size else None})
    return out


def polysemous(model: TopicModel, top: int = 30) -> list[tuple[str, int, int]]:
    """Words among the ``top`` words of two topics (the seed's "lead" in two topics):
    ``(word, topic, other topic)``, in topic order.

    >>> model = TopicModel(n_components=2, min_df=1)
    >>> polysemous(model)
    []
    """
    seen: dict[Hashable, int] = {}
    pairs = []
    for topic, words in model.topics(top).items():
        for word in words:
            if word in seen:
                pairs.append((word, seen[word], topic))
            else:
                seen[word] = topic
    return pairs


_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(dict[str, Any])
