"""The streaming vectoriser and topic model of onlinenmf.text (issue 19)."""

from __future__ import annotations

import random

import pytest

from onlinenmf.text import (
    TextVectorizer,
    TopicModel,
    TopicStream,
    Vocabulary,
    eras,
    polysemous,
    tokenize,
)

GOLD = "gold silver currency banks coin specie bullion notes"
WAR = "army navy war soldiers battle officers fleet troops"


def _documents(n: int, seed: int = 0) -> list[str]:
    """Documents drawn from one of two word pools, with stop words around them."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        pool = (GOLD if i % 2 else WAR).split()
        docs.append(" and the ".join(rng.choices(pool, k=12)))
    return docs


def test_tokenize_lowercases_and_drops_stop_words_digits_and_single_letters():
    assert tokenize("The Treaty of 1848 and a TREATY with Mexico; x") == {
        "treaty": 2, "mexico": 1}


def test_words_are_admitted_after_min_df_documents():
    vocab = Vocabulary(min_df=3)
    admitted = [vocab.update({"gold"}) for _ in range(4)]
    assert admitted == [[], [], ["gold"], []]
    assert vocab.admitted == {"gold": 4}


def test_rare_candidates_are_forgotten_so_memory_stays_bounded():
    vocab = Vocabulary(min_df=2, bucket_docs=100)
    largest = 0
    for i in range(5_000):  # every document brings a word never seen again
        vocab.update({f"once{i}", "common"})
        largest = max(largest, len(vocab.candidates))
    assert largest <= 100
    assert list(vocab.admitted) == ["common"]


def test_past_max_words_the_words_in_fewest_documents_are_pruned():
    vocab = Vocabulary(min_df=1, max_words=2)
    for words in (["a", "b"], ["a", "b", "c"]):
        vocab.update(words)
    assert vocab.admitted == {"a": 2, "b": 2}  # c, newest of the fewest, pruned at once
    assert vocab.drain_pruned() == ["c"]
    for _ in range(2):  # c counted on as a candidate: admitted once it beats the least
        vocab.update(["c"])
    assert vocab.admitted == {"a": 2, "c": 3}
    assert vocab.drain_pruned() == ["b"]
    assert vocab.drain_pruned() == []


def test_weightings():
    counts = {"war": 3, "peace": 1}
    assert TextVectorizer("counts", min_df=1).learn_transform_one("war war war peace") == {
        "war": 3.0, "peace": 1.0}
    for power, peace in ((1, 1.405465), (2, 1.405465**2), (None, 1.405465**2)):
        tfidf = TextVectorizer("tfidf", min_df=1,
                               **({} if power is None else {"idf_power": power}))
        tfidf.learn_one("war peace")
        tfidf.learn_one("war")
        # n = 2 documents; war in 2, peace in 1: idf = 1 + log(3/3), 1 + log(3/2), to the
        # power idf_power (squared by default)
        weights = tfidf.weigh(counts)
        assert weights["war"] == pytest.approx(3.0)
        assert weights["peace"] == pytest.approx(peace, rel=1e-5)
    l2 = TextVectorizer("counts", min_df=1, norm="l2").learn_transform_one("war war war peace")
    assert sum(v * v for v in l2.values()) == pytest.approx(1.0)


def test_bad_parameters_are_one_line_errors():
    with pytest.raises(ValueError, match="weighting must be one of counts, log, tfidf"):
        TextVectorizer("bm25")
    with pytest.raises(ValueError, match="min_df must be a positive integer"):
        Vocabulary(min_df=0)
    for bad in (0, -1.0, float("nan"), "2", True):
        with pytest.raises(ValueError, match="idf_power must be a positive number, got"):
            TopicModel(idf_power=bad)


def test_a_non_string_is_refused_and_leaves_no_trace():
    model = TopicModel(n_components=2, min_df=1)
    model.learn_one("gold silver")
    before = model.to_bytes()
    with pytest.raises(ValueError, match="text must be a string, got int"):
        model.learn_one(17)
    assert model.to_bytes() == before


def test_two_word_pools_become_two_topics():
    model = TopicModel(n_components=2, min_df=2, seed=0)
    for doc in _documents(400):
        model.learn_one(doc)
    topics = [set(words) for words in model.topics(top=8).values()]
    assert sorted(topics, key=sorted) == sorted([set(GOLD.split()), set(WAR.split())],
                                                key=sorted)
    mix = model.transform_one("gold silver banks")
    assert max(mix.values()) / sum(mix.values()) > 0.9


def test_documents_without_admitted_words_are_counted_not_learned():
    model = TopicModel(n_components=2, min_df=2)
    assert model.learn_one("gold silver") == {}
    assert (model.docs_learned, model.nmf.samples_learned) == (1, 0)


def test_bytes_round_trip_continues_identically():
    docs = _documents(120)
    docs[59] += " mint"  # a candidate at the snapshot, admitted after it (min_df 2)
    docs[70] += " mint"
    model = TopicModel(n_components=2, min_df=2, seed=3)
    for doc in docs[:60]:
        model.learn_one(doc)
    copy = TopicModel.from_bytes(model.to_bytes())
    for doc in docs[60:]:
        assert copy.learn_one(doc) == model.learn_one(doc)
    assert copy.to_bytes() == model.to_bytes()


def test_a_snapshot_from_before_idf_power_weighs_on_with_the_plain_idf():
    """A model saved before ``idf_power`` existed learned with ``tf * idf``: restored, it
    goes on weighing so (not with the squared idf of today's default)."""
    import msgspec

    model = TopicModel(n_components=2, min_df=1, idf_power=1, seed=3)
    for doc in _documents(60):
        model.learn_one(doc + " mint" * (doc.count("gold") > 2))
    state = msgspec.msgpack.decode(model.to_bytes())
    del state["idf_power"]
    old = TopicModel.from_bytes(msgspec.msgpack.encode(state))
    assert old.vectorizer.idf_power == 1.0
    assert old.vectorizer.weigh({"mint": 1, "war": 2}) == model.vectorizer.weigh(
        {"mint": 1, "war": 2})


def test_common_words_are_fewer_among_the_default_topics_top_words():
    """The squared idf of the default weighting: on the first 1,000 of every 4th State of the
    Union chunk (k = 15), words in more than a tenth of the documents are 30 of the 150 top
    words (seeds 0-2: 29-31); with plain TF-IDF (``idf_power=1``) they were 48-49, and reached
    most topics' top words in a one pass fit (benchmarks/output/text_grid.md)."""
    from onlinenmf.datasets import load_state_of_the_union

    docs = load_state_of_the_union().iloc[::4].iloc[:1000]["text"].tolist()
    document_frequency: dict[str, int] = {}
    for doc in docs:
        for word in tokenize(doc):
            document_frequency[word] = document_frequency.get(word, 0) + 1
    model = TopicModel(15, seed=0)
    for doc in docs:
        model.learn_one(doc)
    common = [w for words in model.topics(10).values() for w in words
              if document_frequency[w] > len(docs) / 10]
    assert len(common) <= 36, model.topics(10)


def test_topics_over_time_see_a_topic_fade():
    stream = TopicStream(TopicModel(n_components=2, min_df=2, seed=0), bin_width=100)
    docs = _documents(400)  # alternately war and gold
    for day in range(400):  # both for 100 days, then war only
        stream.learn_one(docs[day] if day < 100 else docs[2 * (day // 2)], time=day)
        if day == 99:  # ids are stable: the topics as they were while both were talked of
            topic_of = {words[0] in GOLD.split(): topic
                        for topic, words in stream.model.topics().items()}
    found = {e["topic"]: e for e in eras(stream.prevalence(), threshold=0.3)}
    assert (found[topic_of[True]]["emerged"], found[topic_of[True]]["faded"]) == (0, 100)
    assert (found[topic_of[False]]["emerged"], found[topic_of[False]]["faded"]) == (0, None)


def test_a_word_in_two_topics_is_found():
    model = TopicModel(n_components=2, min_df=2, seed=0)
    for i, doc in enumerate(_documents(300)):
        model.learn_one(doc + " lead lead" if i % 2 else doc + " lead")  # "lead" in both
    pairs = polysemous(model, top=9)
    assert [word for word, _, _ in pairs] == ["lead"]
    assert pairs[0][1] != pairs[0][2]


def test_stop_words_are_scikit_learns_list():
    """The copy kept as data (scikit-learn is not a core dependency) is the list itself."""
    text_features = pytest.importorskip("sklearn.feature_extraction.text")
    from onlinenmf.text import STOP_WORDS

    assert STOP_WORDS == text_features.ENGLISH_STOP_WORDS


def test_building_the_commands_options_imports_neither_river_nor_scikit_learn():
    """Every ``onlinenmf`` start builds every kind's options: the tokeniser's libraries (about
    a second of imports) are loaded only when a document is tokenised."""
    import subprocess
    import sys

    probe = ("import sys; from consumers.cli import build_parser; build_parser(); "
             "loaded = [m for m in ('river.feature_extraction', 'sklearn') if m in sys.modules]; "
             "print(loaded)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_words_admitted_mid_stream_do_not_take_over_beta_1_5_topics():
    """beta = 1.5 (a row-specific MU denominator): a word admitted mid-stream gets a row whose
    statistics start with the mean row's history, so the first refreshes after its admitting
    document do not blow it up. Before, on the first 600 of every 4th State of the Union chunk,
    every topic's top words were words at the minimum document frequency (median 5 documents;
    with the words registered up front, 73)."""
    import numpy as np

    from onlinenmf.datasets import load_state_of_the_union

    docs = load_state_of_the_union().iloc[::4].iloc[:600]["text"].tolist()
    document_frequency: dict[str, int] = {}
    for doc in docs:
        for word in tokenize(doc):
            document_frequency[word] = document_frequency.get(word, 0) + 1
    model = TopicModel(5, weighting="counts", beta=1.5, init="samples")
    for doc in docs:
        model.learn_one(doc)
    tops = [document_frequency[w] for words in model.topics(8).values() for w in words]
    assert np.median(tops) >= 40, model.topics(8)


def test_a_new_rows_statistics_keep_its_initial_row_at_general_beta():
    """The pseudo-statistics of a row added mid-stream: the mean older row's denominator and
    the numerator of its initial W (B / D = W), in the statistics the refresh reads."""
    import numpy as np

    from onlinenmf import OnlineNMF

    model = OnlineNMF(n_components=2, beta=1.5, refresh_every=5, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        model.learn_one({f"w{i}": float(rng.integers(1, 5)) for i in range(6)})
    stats = model._statistics
    m = stats.m
    model.add_features(["new"])
    assert np.allclose(stats.D[m], stats.D[:m].mean(axis=0))
    assert np.allclose(stats.B[m] / stats.D[m], stats.W[m])
