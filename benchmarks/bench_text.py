"""Topics of the State of the Union stream (issue 19): coherence, document completion, speed.

The stream: every 4th paragraph chunk of the 237 addresses (1790-2026) in time order, 4,275
documents, one pass, k = 15 topics, as the issue measured. Scored for every model:

- **NPMI**: each topic's top 10 words, normalised pointwise mutual information of each pair
  over document co-occurrence in all 17,098 chunks (a pair never together scores -1), averaged
  over pairs, then topics.
- **completion**: document completion (Wallach et al. 2009) on 1,069 held-out chunks (every
  4th of those two after a training one): the topic mix is inferred from a document's first
  half of words, then the second half is scored, in nats per held-out word, under
  ``p(w | d) = 0.99 sum_k theta_k phi_kw + 0.01 / V`` over the evaluation vocabulary (the
  training stream's words in >= 5 documents, V of them; each model's own vocabulary is mapped
  onto it, words it does not know get the smoothing term only).
- **documents/s**: training documents per second of fitting, one thread. The peers get their
  vocabulary (gensim's ``Dictionary``, scikit-learn's matrix) built before the clock starts;
  onlinenmf's time includes tokenising and growing its own.

Peers: gensim ``Nmf`` (one pass) and online ``LdaModel`` (one pass), river's ``LDA``, and batch
scikit-learn ``NMF`` (on TF-IDF, and KL on counts: the reference that sees everything). All
see the same tokens (onlinenmf's tokeniser and stop words; the peers' vocabulary is the
evaluation vocabulary, no ``max_df``). The issue's goal is stated against batch NMF on plain
TF-IDF (scikit-learn's ``TfidfTransformer``: smoothed idf, rows l2-normalised); a batch NMF on
TopicModel's own weighting (``tf * idf ** IDF_POWER``, not normalised, the idf of all the
training documents) is in the table too, so the online fit is also compared like for like.

``python -m benchmarks text`` runs the defaults and the peers but river's LDA (under a minute;
``text.md``); ``python -m benchmarks text --full`` adds river's LDA (about 4 minutes:
``text_full.md``) and the weightings and settings the defaults were chosen from, three seeds
each (``text_grid.md``, about 10 minutes more), and the NPMI of the defaults, plain TF-IDF and
the batch models on each half of the stream (early and late addresses) alone.
"""

from __future__ import annotations

import copy
import csv
import itertools
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks import _output
from onlinenmf.datasets.text import STATE_OF_THE_UNION
from onlinenmf.text import IDF_POWER, TopicModel, tokens

DATA = STATE_OF_THE_UNION
K = 15
TOP = 10
SEED = 0
MIN_DF = 5          # the evaluation vocabulary and the peers' vocabularies
SMOOTHING = 0.01    # completion: share of the uniform distribution over the vocabulary


# ============================================================================ data
def load_documents(path: Path = DATA) -> list[str]:
    """The chunks' texts in time order (the file is sorted by date, then chunk)."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str,
                        keep_default_na=False)
    return frame["text"].tolist()


class Corpus:
    """Training stream, held-out halves, evaluation vocabulary and co-occurrence reference."""

    def __init__(self, texts: Sequence[str]):
        self.texts = list(texts)
        self.train = self.texts[::4]
        words = [tokens(t) for t in self.texts]
        self.train_tokens = words[::4]
        df = Counter(w for doc in self.train_tokens for w in set(doc))
        self.vocab = sorted(w for w, c in df.items() if c >= MIN_DF)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        held = [doc for doc in words[2::4][::4] if len(doc) >= 4]
        self.observed = [doc[: len(doc) // 2] for doc in held]
        self.held_out = [[self.index[w] for w in doc[len(doc) // 2:] if w in self.index]
                         for doc in held]
        self.observed_text = [" ".join(doc) for doc in self.observed]
        self.reference = _incidence(words)

    def half(self, part: int) -> Corpus:
        """The same corpus trained on the first (``part`` 0) or second (1) half of the training
        stream only (held-out documents and co-occurrence reference unchanged)."""
        other = copy.copy(self)
        cut = len(self.train) // 2
        part_slice = slice(None, cut) if part == 0 else slice(cut, None)
        other.train, other.train_tokens = self.train[part_slice], self.train_tokens[part_slice]
        return other

    def counts(self, docs: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """Documents x evaluation vocabulary, word counts."""
        rows, cols = [], []
        for i, doc in enumerate(docs):
            ids = [self.index[w] for w in doc if w in self.index]
            rows += [i] * len(ids)
            cols += ids
        data = np.ones(len(rows))
        return sp.csr_matrix((data, (rows, cols)), shape=(len(docs), len(self.vocab)))


def _incidence(docs: Sequence[Sequence[str]]) -> tuple[dict[str, int], sp.csc_matrix]:
    index: dict[str, int] = {}
    rows, cols = [], []
    for i, doc in enumerate(docs):
        for w in set(doc):
            rows.append(i)
            cols.append(index.setdefault(w, len(index)))
    matrix = sp.csc_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(docs), len(index)))
    return index, matrix


# ============================================================================ scores
def npmi(topics: Sequence[Sequence[str]], reference) -> float:
    """Mean NPMI of the topics' top words over document co-occurrence (-1 for a pair never
    seen together, a word never seen counts as such)."""
    index, matrix = reference
    n = matrix.shape[0]
    scores = []
    for words in topics:
        cols = [index[w] for w in words if w in index]
        sub = matrix[:, cols]
        together = (sub.T @ sub).toarray()
        pairs = []
        for a, b in itertools.combinations(range(len(words)), 2):
            if a >= len(cols) or b >= len(cols):
                pairs.append(-1.0)
                continue
            joint = together[a, b] / n
            if joint == 0:
                pairs.append(-1.0)
            elif joint == 1:
                pairs.append(1.0)
            else:
                pmi = math.log(joint / (together[a, a] / n * together[b, b] / n))
                pairs.append(pmi / -math.log(joint))
        scores.append(float(np.mean(pairs)))
    return float(np.mean(scores))


def completion(theta: np.ndarray, phi: np.ndarray, held_out: Sequence[Sequence[int]]) -> float:
    """Nats per held-out word: ``theta`` documents x k (rows sum to 1, or 0 for an empty
    inference: the corpus-wide topic mix is used), ``phi`` k x V (rows sum to 1 on the
    evaluation vocabulary, or less where the model's vocabulary misses words)."""
    V = phi.shape[1]
    prior = phi.mean(axis=0)
    total, count = 0.0, 0
    for row, words in zip(theta, held_out):
        if not words:
            continue
        p = row @ phi[:, words] if row.sum() > 0 else prior[words]
        total += float(np.log((1 - SMOOTHING) * p + SMOOTHING / V).sum())
        count += len(words)
    return total / count


def _normalise_rows(a: np.ndarray) -> np.ndarray:
    sums = a.sum(axis=1, keepdims=True)
    return np.divide(a, sums, out=np.zeros_like(a, dtype=np.float64), where=sums > 0)


def _top_words(phi: np.ndarray, words: Sequence[str]) -> list[list[str]]:
    return [[words[i] for i in np.argsort(-row, kind="stable")[:TOP]] for row in phi]


def _onto(corpus: Corpus, words: Sequence[str], W: np.ndarray) -> np.ndarray:
    """Topic-word rows (k x V) of a model over its own words, mapped onto the evaluation
    vocabulary (mass on words outside it is dropped, as is a word the evaluation lacks)."""
    phi = np.zeros((W.shape[1], len(corpus.vocab)))
    for i, w in enumerate(words):
        j = corpus.index.get(w)
        if j is not None:
            phi[:, j] = W[i]
    return phi


# ============================================================================ models
Row = dict[str, object]


def run_onlinenmf(corpus: Corpus, label: str = "onlinenmf", **params) -> Row:
    # The engine's kernels compile on first use (numba, cached on disk): a model of its own
    # takes that cost before the timed one. From a fresh checkout the timed pass had paid it
    # and read 359-392 documents/s, not 3,300-3,500.
    warm = TopicModel(K, seed=SEED, **params)
    for text in corpus.train[:200]:
        warm.learn_one(text)
    model = TopicModel(K, seed=SEED, **params)
    start = time.perf_counter()
    for text in corpus.train:
        model.learn_one(text)
    seconds = time.perf_counter() - start
    words, W = model.topic_word()
    theta = np.array([_mix(model, text) for text in corpus.observed_text])
    phi = _onto(corpus, words, W)
    return _row(label, corpus, list(model.topics(TOP).values()), theta, phi, seconds)


def _mix(model: TopicModel, text: str) -> np.ndarray:
    mix = model.transform_one(text)
    h = np.array([mix.get(t, 0.0) for t in model.nmf.component_ids])
    return h / h.sum() if h.sum() > 0 else h


def _row(label: str, corpus: Corpus, topics, theta, phi, seconds: float) -> Row:
    return {"model": label, "npmi": npmi(topics, corpus.reference),
            "completion": completion(theta, _normalise_rows(phi) if phi.sum() else phi,
                                     corpus.held_out),
            "docs_per_s": len(corpus.train) / seconds, "first": " ".join(topics[0][:6])}


def run_gensim(corpus: Corpus, kind: str) -> Row:
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel, Nmf

    vocab = Dictionary([corpus.vocab])
    bows = [vocab.doc2bow(doc) for doc in corpus.train_tokens]
    start = time.perf_counter()
    if kind == "Nmf":
        model = Nmf(bows, num_topics=K, id2word=vocab, passes=1, random_state=SEED)
    else:
        model = LdaModel(bows, num_topics=K, id2word=vocab, passes=1, update_every=1,
                         random_state=SEED)
    seconds = time.perf_counter() - start
    words = [vocab[i] for i in range(len(vocab))]
    phi = _onto(corpus, words, model.get_topics().T)
    theta = np.zeros((len(corpus.observed), K))
    for i, doc in enumerate(corpus.observed):
        for topic, p in model.get_document_topics(vocab.doc2bow(doc), minimum_probability=0):
            theta[i, topic] = p
    topics = _top_words(model.get_topics(), words)
    label = "gensim Nmf, 1 pass" if kind == "Nmf" else "gensim LdaModel online, 1 pass"
    return _row(label, corpus, topics, _normalise_rows(theta), phi, seconds)


def run_river_lda(corpus: Corpus) -> Row:
    from river.preprocessing import LDA

    model = LDA(n_components=K, number_of_documents=len(corpus.train), seed=SEED)
    counts = [Counter(doc) for doc in corpus.train_tokens]
    start = time.perf_counter()
    for x in counts:
        model.learn_one(x)
    seconds = time.perf_counter() - start
    # topic-word weights exp E[log phi_kw] of its stick-breaking vocabulary (words past its
    # truncation have none)
    weights, _ = LDA._compute_weights(K, model.nu_1, model.nu_2)
    words = [w for w, i in model.word_to_index.items() if i < len(weights[0])]
    n_kw = np.array([[weights[k][model.word_to_index[w]] for w in words] for k in range(K)])
    phi = _onto(corpus, words, n_kw.T)
    theta = np.zeros((len(corpus.observed), K))
    for i, doc in enumerate(corpus.observed):
        mix = model.transform_one(Counter(doc))
        for topic, p in mix.items():
            theta[i, topic] = p
    return _row("river LDA", corpus, _top_words(n_kw, words), _normalise_rows(theta), phi,
                seconds)


def run_sklearn(corpus: Corpus, kind: str) -> Row:
    from sklearn.decomposition import NMF
    from sklearn.feature_extraction.text import TfidfTransformer

    X = corpus.counts(corpus.train_tokens)
    observed = corpus.counts(corpus.observed)
    if kind == "tfidf":
        tfidf = TfidfTransformer().fit(X)
        X, observed = tfidf.transform(X), tfidf.transform(observed)
        model = NMF(K, init="nndsvda", random_state=SEED, max_iter=500)
        label = "scikit-learn NMF, TF-IDF (batch)"
    elif kind == "same":  # TopicModel's weighting: tf * idf ** IDF_POWER, not normalised
        idf = sp.diags(TfidfTransformer().fit(X).idf_ ** IDF_POWER)
        X, observed = X @ idf, observed @ idf
        model = NMF(K, init="nndsvda", random_state=SEED, max_iter=500)
        label = "scikit-learn NMF, TopicModel's weighting (batch)"
    else:
        model = NMF(K, init="nndsvda", solver="mu", beta_loss="kullback-leibler",
                    random_state=SEED, max_iter=500)
        label = "scikit-learn NMF, KL on counts (batch)"
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    theta = _normalise_rows(model.transform(observed))
    return _row(label, corpus, _top_words(model.components_, corpus.vocab), theta,
                model.components_, seconds)


# ============================================================================ Kafka
def kafka_rate(corpus: Corpus) -> dict[str, float]:
    """Documents/s of ``onlinenmf consume text``'s loop on the embedded broker (Tansu), the
    training stream on one partition, default model and checkpoints: from the first record
    to the last plus the time spent writing checkpoints (as bench_kafka); and the same
    application without Kafka."""
    import tempfile
    import uuid

    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic

    from consumers.application import Source
    from consumers.broker import EmbeddedBroker
    from consumers.loop import ConsumerLoop, LoopConfig
    from consumers.metrics import ConsumerMetrics
    from consumers.text import TextApp, encode_document

    messages = [(f"d{i}".encode(), encode_document(f"d{i}", i, text))
                for i, text in enumerate(corpus.train)]
    for _ in range(2):  # the first run compiles the engine's kernels: the second is timed
        alone = TextApp(model_params={"n_components": K, "seed": SEED})
        alone.restore(None)
        start = time.perf_counter()
        for offset, (_, value) in enumerate(messages):
            alone.process(alone.decode(value), Source("t", 0, offset, None, None, "bench"))
        alone_rate = len(messages) / (time.perf_counter() - start)
    topic = f"text-{uuid.uuid4().hex[:8]}"
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as ckpt:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 3})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                                "log_level": 3})
        for key, value in messages:
            producer.produce(topic, key=key, value=value)
            producer.poll(0)
        assert producer.flush(60) == 0
        del producer  # before the broker stops: librdkafka would log its reconnections
        metrics = ConsumerMetrics()
        app = TextApp(model_params={"n_components": K, "seed": SEED},
                      output_topic=topic + ".mixes", model_topic=topic + ".topics")
        loop = ConsumerLoop(app, LoopConfig(
            bootstrap_servers=broker.bootstrap, topics=[topic], group_id=f"bench-{topic}",
            checkpoint_dir=Path(ckpt), worker_id="bench", exit_when_idle=2.0,
            consumer_config={"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}),
            metrics)
        loop.run()
        checkpoint = metrics.value("onlinenmf_checkpoint_duration_seconds_sum") or 0.0
        elapsed = loop.last_record_time - loop.first_record_time + checkpoint
        del loop  # and its output producer
    assert app.model.docs_learned == len(messages), app.model.docs_learned
    return {"end_to_end": len(messages) / elapsed, "alone": alone_rate}


# ============================================================================ the tables
SEEDS = (0, 1, 2)
#: the weightings and settings the defaults of onlinenmf.text.TopicModel were chosen from
VARIANTS: dict[str, dict] = {
    "defaults (TF-IDF with idf squared, beta 2, no forgetting, core init)": {},
    "plain TF-IDF (idf power 1; the default before)": {"idf_power": 1},
    "idf power 1.5": {"idf_power": 1.5},
    "idf power 2.5": {"idf_power": 2.5},
    "idf power 3": {"idf_power": 3},
    "plain TF-IDF, l1_h 0.1": {"idf_power": 1, "l1_h": 0.1},
    "first dictionary from samples (init samples)": {"init": "samples"},
    "init samples, memories chosen by the data": {"init": "samples", "forget_factor": None},
    "memories chosen by the data": {"forget_factor": None},
    "forget 0.998": {"forget_factor": 0.998},
    "forget 0.9995": {"forget_factor": 0.9995},
    "l1_h 0.05": {"l1_h": 0.05},
    "l1_h 0.1": {"l1_h": 0.1},
    "refresh_sweeps 3": {"refresh_sweeps": 3},
    "counts, beta 2": {"weighting": "counts"},
    "log counts, beta 2": {"weighting": "log"},
    "TF-IDF l2-normalised, beta 2": {"norm": "l2"},
    "plain TF-IDF l2-normalised, beta 2": {"idf_power": 1, "norm": "l2"},
    "counts, KL (beta 1)": {"weighting": "counts", "beta": 1},
    "running TF-IDF, KL (beta 1)": {"weighting": "tfidf", "beta": 1},
    "log counts, KL (beta 1)": {"weighting": "log", "beta": 1},
    "min_df 3": {"min_df": 3},
    "min_df 10": {"min_df": 10},
}
#: too slow for three seeds: one (beta 1.5 fits at O(m k) per document)
SLOW_VARIANTS: dict[str, dict] = {
    "counts, beta 1.5": {"weighting": "counts", "beta": 1.5, "init": "samples"}}


def table(rows: Sequence[Row]) -> list[str]:
    lines = ["| model | NPMI (top 10) | completion (nats/word) | documents/s | first topic |",
             "|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['npmi']:.3f} | {r['completion']:.2f} | "
                     f"{r['docs_per_s']:,.0f} | {r['first']} |")
    return lines


def grid(corpus: Corpus) -> list[str]:
    """The variants over three seeds (mean NPMI chooses the defaults)."""
    global SEED
    lines = ["| variant | NPMI per seed | mean NPMI | completion (nats/word) | documents/s |",
             "|---|---|---:|---:|---:|"]
    runs = [(name, p, SEEDS) for name, p in VARIANTS.items()]
    runs += [(name, p, SEEDS[:1]) for name, p in SLOW_VARIANTS.items()]
    for name, params, seeds in runs:
        rows = []
        for SEED in seeds:
            rows.append(run_onlinenmf(corpus, name, **params))
        SEED = SEEDS[0]
        scores = " / ".join(f"{r['npmi']:.3f}" for r in rows)
        lines.append(f"| {name} | {scores} | {np.mean([r['npmi'] for r in rows]):.3f} | "
                     f"{np.mean([r['completion'] for r in rows]):.2f} | "
                     f"{np.mean([r['docs_per_s'] for r in rows]):,.0f} |")
        print(lines[-1], flush=True)
    return lines


#: the models scored on each half of the stream alone (name -> how to run it on a corpus)
HALF_RUNS: dict[str, Callable[[Corpus], Row]] = {
    "onlinenmf TopicModel, defaults": lambda c: run_onlinenmf(c),
    "onlinenmf, plain TF-IDF (idf power 1)": lambda c: run_onlinenmf(c, idf_power=1),
    "scikit-learn NMF, TF-IDF (batch)": lambda c: run_sklearn(c, "tfidf"),
    "scikit-learn NMF, TopicModel's weighting (batch)": lambda c: run_sklearn(c, "same"),
}


def halves(corpus: Corpus) -> list[str]:
    """NPMI when trained on the early or the late half of the stream alone (seed 0): whether
    the choice holds on both eras, not only on the whole stream."""
    parts = [corpus.half(0), corpus.half(1)]
    lines = [f"Each half of the stream alone ({len(parts[0].train):,} early and "
             f"{len(parts[1].train):,} late documents, seed 0; NPMI over all chunks):", "",
             "| model | NPMI, early half | NPMI, late half |", "|---|---:|---:|"]
    scores = {}
    for name, run in HALF_RUNS.items():
        scores[name] = [run(part)["npmi"] for part in parts]
        lines.append(f"| {name} | {scores[name][0]:.3f} | {scores[name][1]:.3f} |")
        print(lines[-1], flush=True)
    ours, batch = scores["onlinenmf TopicModel, defaults"], scores[
        "scikit-learn NMF, TF-IDF (batch)"]
    lines += ["", f"The defaults against batch NMF on TF-IDF: {ours[0] / batch[0]:.2f}x on the "
                  f"early half, {ours[1] / batch[1]:.2f}x on the late half (goal 0.9x)."]
    return lines


def targets(rows: dict[str, Row], kafka: dict[str, float]) -> list[str]:
    """The issue's targets, met or missed, with the numbers."""
    ours = rows["onlinenmf"]
    out = []

    def line(text: str, met: bool) -> None:
        out.append(f"- {'met' if met else 'missed'}: {text}")

    nmf, batch = rows["gensim Nmf"], rows["sklearn tfidf"]
    line(f"NPMI {ours['npmi']:.3f} >= gensim Nmf's one pass {nmf['npmi']:.3f}",
         ours["npmi"] >= nmf["npmi"])
    ratio = ours["npmi"] / batch["npmi"]
    line(f"(goal) NPMI >= 0.9x batch scikit-learn NMF on TF-IDF: {ours['npmi']:.3f} / "
         f"{batch['npmi']:.3f} = {ratio:.2f}x", ratio >= 0.9)
    same = rows["sklearn same"]
    out.append(f"- like for like (not a target): batch NMF on TopicModel's own weighting "
               f"reaches {same['npmi']:.3f}, so the one pass is at "
               f"{ours['npmi'] / same['npmi']:.2f}x of it; the gain over plain TF-IDF is the "
               f"weighting's, not a closer fit")
    if "river LDA" in rows:
        lda = rows["river LDA"]
        line(f"completion {ours['completion']:.2f} >= river LDA's {lda['completion']:.2f} "
             f"nats per held-out word", ours["completion"] >= lda["completion"])
        speed = ours["docs_per_s"] / lda["docs_per_s"]
        line(f"speed >= 10x river LDA: {ours['docs_per_s']:,.0f} / {lda['docs_per_s']:,.0f} "
             f"documents/s = {speed:.0f}x", speed >= 10)
    else:
        out.append("- completion and speed against river LDA: see text_full.md (--full)")
    line(f">= 1,000 documents/s end to end on the embedded broker: {kafka['end_to_end']:,.0f} "
         f"(the application alone, without Kafka: {kafka['alone']:,.0f}; measured one after "
         f"the other on a shared machine, so either can come out slower)",
         kafka["end_to_end"] >= 1000)
    return out


def main(argv: Sequence[str] = ()) -> int:
    """``--full``: also river LDA and the grid the defaults were chosen from; writes
    text_full.md and text_grid.md instead of text.md."""
    full = "--full" in argv
    unknown = [a for a in argv if a != "--full"]
    if unknown:
        print(f"bench_text: unknown options {unknown}; the only one is --full", file=sys.stderr)
        return 2
    corpus = Corpus(load_documents())
    header = (f"{len(corpus.train):,} training documents (every 4th chunk in time order), "
              f"{len(corpus.held_out):,} held out, evaluation vocabulary "
              f"{len(corpus.vocab):,} words, k = {K}, one pass.")
    print(header, flush=True)
    runs: dict[str, Callable[[], Row]] = {
        "onlinenmf": lambda: run_onlinenmf(corpus, "onlinenmf TopicModel, defaults"),
        "gensim Nmf": lambda: run_gensim(corpus, "Nmf"),
        "gensim LdaModel": lambda: run_gensim(corpus, "LdaModel"),
        "sklearn tfidf": lambda: run_sklearn(corpus, "tfidf"),
        "sklearn same": lambda: run_sklearn(corpus, "same"),
        "sklearn kl": lambda: run_sklearn(corpus, "kl"),
    }
    if full:
        runs["river LDA"] = lambda: run_river_lda(corpus)
    rows: dict[str, Row] = {}
    for name, run in runs.items():
        rows[name] = run()
        print(table([rows[name]])[-1], flush=True)
    kafka = kafka_rate(corpus)
    print(f"Kafka: {kafka}", flush=True)
    command = "python -m benchmarks text" + (" --full" if full else "")
    lines = ["# Topics of the State of the Union stream (issue 19)", "",
             _output.provenance(command), "", header, "", *table(list(rows.values())), "",
             "Targets:", "", *targets(rows, kafka)]
    path = _output.write("text_full.md" if full else "text.md", lines)
    print("\n".join(lines[4:]) + f"\n-> {path}")
    if full:
        glines = ["# How the defaults of onlinenmf.text.TopicModel were chosen (issue 19)", "",
                  _output.provenance(command), "", header, "", *grid(corpus), "",
                  *halves(corpus)]
        print(f"-> {_output.write('text_grid.md', glines)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
