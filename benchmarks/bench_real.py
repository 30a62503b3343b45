"""Real streams (issue 13): ECAM document completion against peers at their best settings.

ECAM document completion: the 699 infant samples stream in day-of-life order. Each sample's
reads are split in two halves by binomial thinning with a fixed seed; *before* the sample is
learned, every method's current dictionary is read, the sample's mixture h is solved on the
first half, and the second half is scored as log-likelihood per held-out read under the
normalised reconstruction. One scoring function (:func:`completion_loglik`) serves every
method, so only the dictionaries differ: the same KL (multinomial) solver for h, the same
probability floor, the same treatment of taxa a dictionary has never seen.

Methods (k = 10 everywhere):

* ``OnlineNMF(n_components=10, beta=1)`` at every default;
* ``OnlineNMF`` at the best (refresh_every, forget_factor) of a small grid, chosen on the
  first half of the stream and reported on both halves (the second half is the honest number);
* scikit-learn ``MiniBatchNMF(beta_loss="kullback-leibler")``, first ``partial_fit`` on the
  first 20 samples (it needs more rows than components for its default init), then one
  ``partial_fit`` per sample (``batch_size=1``) or per buffered mini-batch of 5 or 20, over a
  grid of ``init`` x ``forget_factor``; chosen on the first half like ours. Its per-call
  forgetting is ``forget_factor ** (batch_size / 20)`` (its ``_check_params`` runs on the
  first call only), so the per-sample forgetting is ``forget_factor ** (1/20)`` whatever the
  batch size: the table states it;
* river's ``LDA`` (online LDA with an infinite vocabulary): its topic-word distributions,
  scored like the others (h = the maximum-likelihood mixture, which for normalised topics is
  the same KL solve). Not like-for-like: river's LDA reads ``x.keys()`` only, i.e. learns from
  which taxa are present, never from read counts;
* a causal batch KL NMF refitted from scratch every 20 samples on the last 120 samples;
* a batch KL NMF fitted on all 699 samples: it sees the future, a non-causal reference only.

Every method learns every sample; scores count from sample 20 on (the peers' first fit), so
each method is scored on the same samples, all of which meet some dictionary.

Artificial gut (Silverman et al. 2018): per vessel, the prequential loss of one model over
the four interleaved vessels and a Bray-Curtis distance-to-recent-mean baseline around the
Bacteroides ovatus challenge: false alarms of a z-score and a Page-Hinkley detector on the
stable hourly stretch before it, and how well each score separates the day after the
challenge from the day before (AUC).

The defaults, one at a time (issue 13, item 4): ECAM document completion with the old
defaults (``refresh_every=100, forget_factor=0.998``, no drift detection), the automatic
schedule with one fixed forgetting factor, and every default (the automatic schedule and the
two memories of :mod:`onlinenmf.memories`); the stream length before the first non-random
dictionary; the share of the learning time spent in refreshes. Drift events at the defaults
and for a few ``drift_threshold`` values: false events per 100 samples on stable stretches
(the artificial gut's hourly samples before the challenge, per vessel; ECAM's second year of
life, when the infants' communities change least), and on ECAM with five second-year samples
spliced into the first months (a planted perturbation built from real samples), how many
samples after its onset the first drift event comes.

Spliced perturbations (issue 13, item 5): ECAM with five second-year samples spliced into
the first year at four stream positions (another five each time): the AUC of the spliced
samples' prequential loss against the rest's, beside a Bray-Curtis distance-to-recent-mean
baseline, and how soon a drift event follows the onset. The tracker (item 3): appear/vanish
events per sample under the hysteresis settings compared (ECAM per infant, the artificial
gut's stable hourly stretch per vessel) and the anomaly marks per 100 samples, on the spliced
samples and after the gut's challenge.

Run: ``python -m benchmarks real`` (about 4-5 minutes on one core); ``python -m benchmarks
real --only splice tracker`` measures the sections named (``ecam``, ``defaults``, ``drift``,
``gut``, ``splice``, ``tracker``) and keeps the file's others as they are, each section so
written ending with its own provenance line. Writes ``benchmarks/output/real.md``; its section
"Investigation" (why MiniBatchNMF's per-sample step beat our statistics, issue 13) is
hand-written from scratch measurements and kept as it is when the bench rewrites the file.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from benchmarks import _output
from benchmarks._output import provenance
from onlinenmf import OnlineNMF, Tracker
from onlinenmf.datasets import load_artificial_gut, load_ecam
from onlinenmf.engine import DRIFT_THRESHOLD as DEFAULT_DRIFT_THRESHOLD

K = 10
SPLIT_SEED = 0
#: Rows the peers see before their first fit (MiniBatchNMF's nndsvda init needs >= k rows).
START = 20
#: Probability floor of a held-out read (a taxon the dictionary gives no mass).
FLOOR = 1e-9
OUTPUT = _output.OUTPUT

OURS_GRID = {"refresh_every": (1, 5, 20, 100), "forget_factor": (0.95, 0.98, 0.99, 0.998)}
PEER_GRID = {"init": ("nndsvda", "random"), "forget_factor": (0.5, 0.7, 0.9),
             "batch_size": (1, 5, 20)}
REFIT_EVERY, REFIT_WINDOW = 20, 120


# ---------------------------------------------------------------------------------- protocol
@dataclass(frozen=True)
class Sample:
    """One stream sample: its non-zero taxa (column indices) and the two halves of its reads."""

    columns: np.ndarray
    values: np.ndarray
    first: np.ndarray  # reads that fit h
    held: np.ndarray  # reads that are scored


def completion_stream(counts: sp.csr_matrix, seed: int = SPLIT_SEED) -> list[Sample]:
    """Split every sample's reads in halves by binomial thinning (p = 1/2), in stream order."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(counts.shape[0]):
        part = slice(counts.indptr[i], counts.indptr[i + 1])
        columns = counts.indices[part].astype(np.int64)
        values = counts.data[part].astype(np.float64)
        first = rng.binomial(values.astype(np.int64), 0.5).astype(np.float64)
        out.append(Sample(columns, values, first, values - first))
    return out


@numba.njit(cache=True)
def _solve_h(W: np.ndarray, v: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """argmin_h KL(v | W h), h >= 0, for W whose columns sum to 1 over all taxa (the rows
    given are the non-zero entries of v): multiplicative updates (Lee & Seung 2001) from a
    flat start until no entry moves by more than ``tol`` relative to the largest."""
    n, k = W.shape
    h = np.full(k, v.sum() / k)
    wh = np.empty(n)
    for _ in range(max_iter):
        for i in range(n):
            s = 0.0
            for j in range(k):
                s += W[i, j] * h[j]
            wh[i] = max(s, 1e-300)
        change, top = 0.0, 0.0
        for j in range(k):
            g = 0.0
            for i in range(n):
                g += W[i, j] * v[i] / wh[i]
            new = h[j] * g  # the denominator (column sum of W) is 1
            change = max(change, abs(new - h[j]))
            top = max(top, new)
            h[j] = new
        if change <= tol * top:
            break
    return h


def completion_loglik(rows: np.ndarray | None, sample: Sample, n_features: int) -> float:
    """Log-likelihood of the held-out reads of ``sample`` under a dictionary (the one scoring
    function of every method).

    ``rows`` are the dictionary's rows at ``sample.columns`` with every column of the full
    dictionary summing to 1 (a distribution over taxa); an all-zero row is a taxon the
    dictionary has never seen: it takes no part in the fit of h and its reads meet the floor.
    ``None`` (no dictionary yet) scores under the uniform distribution over the taxa.
    """
    if rows is None:
        return float(sample.held.sum() * np.log(1.0 / n_features))
    fit = (sample.first > 0) & (rows.sum(axis=1) > 0)
    if fit.any():
        h = _solve_h(np.ascontiguousarray(rows[fit]), sample.first[fit], 1000, 1e-7)
    else:
        h = np.ones(rows.shape[1])
    p = rows @ h / max(h.sum(), 1e-300)
    return float(sample.held @ np.log(np.maximum(p, FLOOR)))


@dataclass
class Scores:
    """Per-sample held-out log-likelihood and held-out reads of one method over the stream."""

    loglik: np.ndarray
    reads: np.ndarray

    def per_read(self, part: slice = slice(None)) -> float:
        return float(self.loglik[part].sum() / self.reads[part].sum())


def run_stream(learner, stream: list[Sample], n_features: int) -> Scores:
    """Score each sample against the learner's current dictionary, then let it learn it."""
    n = len(stream)
    loglik, reads = np.zeros(n), np.zeros(n)
    for i, sample in enumerate(stream):
        if sample.held.sum() > 0 and sample.first.sum() > 0:
            loglik[i] = completion_loglik(learner.rows(sample.columns), sample, n_features)
            reads[i] = sample.held.sum()
        learner.learn(sample)
    return Scores(loglik, reads)


def _normalised_rows(components: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Rows at ``columns`` of a k x m dictionary (scikit-learn's layout), columns summing to 1."""
    sums = components.sum(axis=1)
    return (components[:, columns] / np.where(sums > 0, sums, 1.0)[:, None]).T


# ---------------------------------------------------------------------------------- learners
class Ours:
    """OnlineNMF through its public interface: ``learn_one``, ``W`` and ``features``."""

    def __init__(self, names: list[str], n_components: int = K, **params):
        self.names = names
        self.model = OnlineNMF(n_components=n_components, beta=1, **params)
        self.position = {name: i for i, name in enumerate(names)}
        self.row_of = np.full(len(names), -1)  # taxon column -> row of W
        self.known = 0
        self.first_dictionary: int | None = None  # samples learned when W was first refreshed

    def rows(self, columns: np.ndarray) -> np.ndarray:
        W = self.model.W
        if self.model.n_features > self.known:
            for r, name in enumerate(self.model.features[self.known:], start=self.known):
                self.row_of[self.position[name]] = r
            self.known = self.model.n_features
        sums = W.sum(axis=0)
        out = np.zeros((columns.size, W.shape[1]))
        r = self.row_of[columns]
        seen = r >= 0
        out[seen] = W[r[seen]] / np.where(sums > 0, sums, 1.0)
        return out

    def features(self, sample: Sample) -> dict[str, float]:
        """The sample as learn_one takes it: taxon names to Python floats (as from JSON)."""
        names = self.names
        return {names[c]: v for c, v in zip(sample.columns.tolist(), sample.values.tolist())}

    def learn(self, sample: Sample) -> None:
        self.model.learn_one(self.features(sample))
        if self.first_dictionary is None and self.model.model_version > 0:
            self.first_dictionary = self.model.samples_learned


class Peer:
    """scikit-learn's MiniBatchNMF: ``partial_fit`` on the first START samples, then on every
    ``batch_size`` buffered samples."""

    def __init__(self, n_features: int, init: str | None = None, forget_factor: float = 0.7,
                 batch_size: int | None = 1):
        from sklearn.decomposition import MiniBatchNMF

        params = {"init": init, "forget_factor": forget_factor}
        if batch_size is not None:  # None: its own default (1024), with per-sample calls
            params["batch_size"] = batch_size
        self.model = MiniBatchNMF(K, beta_loss="kullback-leibler", random_state=0, **params)
        self.every = batch_size or 1
        self.m = n_features
        self.buffer: list[Sample] = []
        self.started = False

    def rows(self, columns: np.ndarray) -> np.ndarray | None:
        return _normalised_rows(self.model.components_, columns) if self.started else None

    def learn(self, sample: Sample) -> None:
        self.buffer.append(sample)
        if len(self.buffer) == (self.every if self.started else START):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model.partial_fit(_csr(self.buffer, self.m))
            self.buffer, self.started = [], True


def _csr(samples: list[Sample], m: int) -> sp.csr_matrix:
    indptr = np.cumsum([0] + [s.columns.size for s in samples])
    return sp.csr_matrix((np.concatenate([s.values for s in samples]),
                          np.concatenate([s.columns for s in samples]), indptr),
                         shape=(len(samples), m))


def batch_kl_nmf(samples: list[Sample], m: int) -> np.ndarray:
    """A batch KL NMF (scikit-learn ``NMF``, multiplicative updates, nndsvda start) of the
    samples, fitted on the taxa they contain; the k x m dictionary (zeros elsewhere)."""
    from sklearn.decomposition import NMF

    X = _csr(samples, m)
    used = np.unique(X.indices)
    model = NMF(K, beta_loss="kullback-leibler", solver="mu", init="nndsvda", max_iter=1000,
                tol=1e-5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:, used])
    components = np.zeros((K, m))
    components[:, used] = model.components_
    return components


class Refit:
    """A causal batch KL NMF refitted from scratch every ``every`` samples on the last
    ``window`` samples."""

    def __init__(self, n_features: int, every: int = REFIT_EVERY, window: int = REFIT_WINDOW):
        self.m, self.every, self.window = n_features, every, window
        self.past: list[Sample] = []
        self.components: np.ndarray | None = None

    def rows(self, columns: np.ndarray) -> np.ndarray | None:
        return None if self.components is None else _normalised_rows(self.components, columns)

    def learn(self, sample: Sample) -> None:
        self.past.append(sample)
        if len(self.past) % self.every == 0:
            self.components = batch_kl_nmf(self.past[-self.window:], self.m)


class Fixed:
    """One dictionary for the whole stream (the batch fit on everything: non-causal)."""

    def __init__(self, components: np.ndarray):
        self.components = components

    def rows(self, columns: np.ndarray) -> np.ndarray:
        return _normalised_rows(self.components, columns)

    def learn(self, sample: Sample) -> None:
        pass


class RiverLDA:
    """river's LDA; its topic-word distributions over the taxa serve as the dictionary.

    A taxon river has indexed gets its stick-breaking weight per topic; one it has not (or
    beyond its truncation) gets the out-of-vocabulary weight; each topic is then normalised
    over the 3,347 taxa. ``_compute_weights`` is river's own (private) helper for these.
    """

    def __init__(self, names: list[str], n_documents: int):
        from river.preprocessing import LDA

        self.names = names
        self.model = LDA(n_components=K, number_of_documents=n_documents, seed=0)
        self.position = {name: i for i, name in enumerate(names)}

    def rows(self, columns: np.ndarray) -> np.ndarray | None:
        if self.model.counter == 0:
            return None
        weights, oov = self.model._compute_weights(K, self.model.nu_1, self.model.nu_2)
        size = self.model.truncation_size
        full = np.tile(np.array([oov[t] for t in range(K)]), (len(self.names), 1))
        indexed = [(self.position[w], i) for w, i in self.model.word_to_index.items()
                   if i < size]
        if indexed:
            cols, idx = map(np.array, zip(*indexed))
            full[cols] = np.array([weights[t][idx] for t in range(K)]).T
        full /= full.sum(axis=0)
        return full[columns]

    def features(self, sample: Sample) -> dict[str, float]:
        """The sample as learn_one takes it: taxon names to Python floats (as from JSON)."""
        names = self.names
        return {names[c]: v for c, v in zip(sample.columns.tolist(), sample.values.tolist())}

    def learn(self, sample: Sample) -> None:
        self.model.learn_one(self.features(sample))


# ---------------------------------------------------------------------------------- ECAM
def _halves(n: int) -> dict[str, slice]:
    """The scored parts: from sample START on (every method has a dictionary by then), the
    first half of the stream for tuning, the second for evaluation."""
    return {"first half": slice(START, n // 2), "second half": slice(n // 2, n),
            "whole": slice(START, n)}


def _best(runs: dict, n: int):
    """The run with the best score on the first half (the tuning part)."""
    return max(runs.items(), key=lambda item: item[1].per_read(_halves(n)["first half"]))


def ecam_completion() -> tuple[list[str], dict]:
    table = load_ecam()
    counts = table.counts.tocsr()
    names = list(table.features)
    m = counts.shape[1]
    stream = completion_stream(counts)
    n = len(stream)
    rows: list[tuple[str, str, str, Scores]] = []

    start = time.perf_counter()
    default = run_stream(Ours(names), stream, m)
    rows.append(("OnlineNMF, every default", "-", "-", default))
    growing = Ours(names, adapt_rank=True)
    adaptive = run_stream(growing, stream, m)
    births = sum(e.kind == "grow" for e in growing.model.events)  # adapt_rank's births
    rows.append(("OnlineNMF, adapt_rank=True (started at k = 10)",
                 f"adapt_rank=True (rank at the end {growing.model.n_components_}, "
                 f"{births} births)", "-", adaptive))
    wide = run_stream(Ours(names, n_components=2 * K), stream, m)
    rows.append((f"OnlineNMF at k = {2 * K}, for scale (what a rank grown early would reach)",
                 f"n_components={2 * K}", "-", wide))
    orders = [run_stream(Ours(names), completion_stream(counts[order]), m).per_read(
        slice(START, n)) for order in shuffled_orders(table.metadata["time"].to_numpy())]

    ours = {}
    for refresh in OURS_GRID["refresh_every"]:
        for rho in OURS_GRID["forget_factor"]:
            ours[(refresh, rho)] = run_stream(
                Ours(names, refresh_every=refresh, forget_factor=rho), stream, m)
    (refresh, rho), scores = _best(ours, n)
    rows.append(("OnlineNMF, best of grid", f"refresh_every={refresh}, forget_factor={rho}",
                 _grid_text(OURS_GRID), scores))
    ours_seconds = time.perf_counter() - start

    start = time.perf_counter()
    peer_default = run_stream(Peer(m, batch_size=None), stream, m)
    rows.append(("MiniBatchNMF, defaults, partial_fit per sample",
                 "(batch_size=1024, forget_factor=0.7: per-sample rho 0.7)", "-", peer_default))
    peers = {}
    for init in PEER_GRID["init"]:
        for ff in PEER_GRID["forget_factor"]:
            for batch in PEER_GRID["batch_size"]:
                peers[(init, ff, batch)] = run_stream(Peer(m, init, ff, batch), stream, m)
    (init, ff, batch), peer_best = _best(peers, n)
    rows.append(("MiniBatchNMF, best of grid",
                 f"init={init!r}, forget_factor={ff}, batch_size={batch} (per-sample rho "
                 f"{ff ** (1 / START):.4f})", _grid_text(PEER_GRID), peer_best))
    single = {key: s for key, s in peers.items() if key[2] == 1}
    (init1, ff1, _), peer_single = _best(single, n)
    peer_seconds = time.perf_counter() - start

    start = time.perf_counter()
    lda = run_stream(RiverLDA(names, n), stream, m)
    rows.append(("river LDA (presence only, see notes)", "number_of_documents=699", "-", lda))
    lda_seconds = time.perf_counter() - start

    start = time.perf_counter()
    refit = run_stream(Refit(m), stream, m)
    rows.append(("batch KL NMF refit (causal)",
                 f"from scratch every {REFIT_EVERY} samples on the last {REFIT_WINDOW}", "-",
                 refit))
    everything = run_stream(Fixed(batch_kl_nmf(stream, m)), stream, m)
    rows.append(("batch KL NMF on all 699 (NON-causal: sees the future)", "-", "-", everything))
    batch_seconds = time.perf_counter() - start

    ours_us, peer_us, refresh_time = per_sample_cost(stream, names, m, init1, ff1)
    timing = {"ours_us": ours_us, "peer_us": peer_us, "refresh_time": refresh_time,
              "peer_setting": f"init={init1!r}, forget_factor={ff1}",
              "seconds": {"ours": ours_seconds, "MiniBatchNMF": peer_seconds,
                          "river LDA": lda_seconds, "batch NMF": batch_seconds},
              "ours_grid": ours, "peer_grid": peers, "n": n, "m": m,
              "default": default.per_read(slice(START, n)),
              "adaptive": adaptive.per_read(slice(START, n)),
              "adaptive_rank": growing.model.n_components_, "births": births,
              "rank_path": _rank_path(growing.model),
              "orders": orders, "wide": wide.per_read(slice(START, n))}
    return _table(rows, n), timing


def _rank_path(model: OnlineNMF) -> str:
    """The rank after each sample at which it changed: '10 -> 12 (153) -> ...'."""
    steps = [f"{e['new']} ({e['sample']})" for e in model.events if e["kind"] in ("grow", "prune")]
    return " -> ".join([str(model.n_components), *steps])


def shuffled_orders(times: np.ndarray) -> list[np.ndarray]:
    """The stream in time order with the samples of equal time shuffled (seeds 1-3): how much
    of a score is the bundled order's luck."""
    return [np.lexsort((np.random.default_rng(seed).random(times.size), times))
            for seed in ORDER_SEEDS]


def per_sample_cost(stream: list[Sample], names: list[str], m: int, init: str,
                    forget_factor: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Time per sample (us) of OnlineNMF.learn_one (defaults) and of MiniBatchNMF.partial_fit
    (one sample per call), fed the same samples in one loop, after the peer's first fit (on
    the first START samples, which Peer.learn buffers); the
    first pass of ours above has compiled its kernels. Also the time ours spent in its
    refreshes (the first dictionary and its re-fits counted apart)."""
    ours, peer = Ours(names), Peer(m, init, forget_factor, 1)
    refreshes = _time_refreshes(ours.model)
    # Each model's own input is made before its clock starts (a dict of names to floats for
    # ours, a one-row CSR matrix for the peer): the times are of learn_one and partial_fit.
    dicts = [ours.features(sample) for sample in stream]
    rows = [_csr([sample], m) for sample in stream]
    spent = np.zeros((2, len(stream)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, sample in enumerate(stream):
            start = time.perf_counter()
            ours.model.learn_one(dicts[i])
            spent[0, i] = time.perf_counter() - start
            if i < START:  # the peer's first fit, on the first START samples (not reported)
                peer.learn(sample)
                continue
            start = time.perf_counter()
            peer.model.partial_fit(rows[i])
            spent[1, i] = time.perf_counter() - start
    refreshes["total"] = float(spent[0].sum())
    return 1e6 * spent[0, START:], 1e6 * spent[1, START:], refreshes


def _time_refreshes(model: OnlineNMF) -> dict:
    """Wrap ``model.refresh`` (the engine calls it through the instance) with a timer: seconds
    in first dictionaries (and their re-fits, which re-learn the buffer) and in the others;
    and, within the others, in restating (beta = 1: the open samples re-solved, the
    statistics rebuilt; ``Learner.restate``, without the M-step after it)."""
    spent = {"fits": 0.0, "refreshes": 0.0, "count": 0, "restating": 0.0}
    refresh = model.refresh
    learner = model._learner
    restate = learner.restate

    def timed_restate(*args) -> bool:
        start = time.perf_counter()
        done = restate(*args)
        spent["restating"] += time.perf_counter() - start
        return done

    def timed() -> None:
        fit = not model._initialised or model._schedule.refit_due(model.samples_learned)
        start = time.perf_counter()
        refresh()
        spent["fits" if fit else "refreshes"] += time.perf_counter() - start
        spent["count"] += 1

    model.refresh = timed
    learner.restate = timed_restate
    return spent


def _refresh_share(spent: dict) -> str:
    total = spent["total"]
    return (f"Refreshes in that run: {spent['count']}, {100 * spent['refreshes'] / total:.0f} % "
            f"of ours's learning time (amortised, the automatic schedule's bound; of which "
            f"restating {100 * spent['restating'] / total:.0f} % of the learning time), plus "
            f"{100 * spent['fits'] / total:.0f} % in the first dictionary and its re-fits at "
            "4k, 8k and 16k samples (each re-learns the buffer).")


def _grid_text(grid: dict) -> str:
    return " x ".join(f"{name} {values}" for name, values in grid.items())


def _table(rows, n: int) -> list[str]:
    parts = _halves(n)
    lines = ["| method | non-default settings | tuned over (on the first half) | first half | "
             "second half | whole |", "|---|---|---|---|---|---|"]
    for name, settings, grid, scores in rows:
        values = " | ".join(f"{scores.per_read(part):.3f}" for part in parts.values())
        lines.append(f"| {name} | {settings} | {grid} | {values} |")
    return lines


def _grid_table(runs: dict, n: int, names: tuple[str, ...]) -> list[str]:
    parts = _halves(n)
    lines = ["| " + " | ".join(names) + " | first half | second half | whole |",
             "|---" * (len(names) + 3) + "|"]
    for key, scores in runs.items():
        values = " | ".join(f"{scores.per_read(part):.3f}" for part in parts.values())
        lines.append("| " + " | ".join(map(str, key)) + f" | {values} |")
    return lines


def ecam_section() -> list[str]:
    table, info = ecam_completion()
    n, m = info["n"], info["m"]
    ours_us, peer_us = info["ours_us"], info["peer_us"]
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in info["seconds"].items())
    return [
        "## ECAM document completion",
        "",
        f"{n} infant samples in day-of-life order, k = {K}; each sample's reads split in halves "
        f"(binomial thinning, seed {SPLIT_SEED}); h solved on one half against the dictionary "
        "*before* the sample is learned, the other half scored: log-likelihood per held-out "
        "read (higher is better; uniform over the taxa would give "
        f"{np.log(1 / m):.3f}). One scoring function for every method (h by KL multiplicative "
        "updates to convergence, probabilities floored at 1e-9). Scored from sample "
        f"{START} on "
        f"(the peers' first fit): first half = samples {START}-{n // 2 - 1} (tuning), second "
        f"half = {n // 2}-{n - 1} (evaluation), whole = {START}-{n - 1}.",
        "",
        *table,
        "",
        "Per-sample cost, same run (both fed the same samples in one loop, after the first "
        f"{START}; ours includes its dictionary refreshes; each model's input, a dict of names to "
        "floats for ours, a one-row CSR matrix for the peer, is made before its clock starts): "
        f"OnlineNMF.learn_one at the defaults, median {np.median(ours_us):.0f} us, mean "
        f"{ours_us.mean():.0f} us (the mean carries the one-off first dictionary, "
        f"{ours_us.max() / 1e3:.0f} ms on one sample); MiniBatchNMF.partial_fit per sample "
        f"({info['peer_setting']}, batch_size=1) median {np.median(peer_us):.0f} us, mean "
        f"{peer_us.mean():.0f} us. Ratio of medians "
        f"{np.median(peer_us) / np.median(ours_us):.1f}x, of means "
        f"{peer_us.mean() / ours_us.mean():.1f}x. Wall time: {seconds}. "
        f"{_refresh_share(info['refresh_time'])}",
        "",
        "Notes: MiniBatchNMF's per-sample forgetting is forget_factor ** (1/20) because its "
        "first partial_fit has 20 rows (it fixes rho per call from that call only). river's LDA "
        "learns from which taxa are present (it reads x.keys()), not from read counts, so it "
        "is not a like-for-like peer; its mixture here is the maximum-likelihood one under its "
        "topics, as for every method.",
        "",
        *_ecam_targets(info),
        "",
        "### Grids",
        "",
        *_grid_table(info["ours_grid"], n, ("refresh_every", "forget_factor")),
        "",
        *_grid_table(info["peer_grid"], n, ("MiniBatchNMF init", "forget_factor", "batch_size")),
    ]


def _ecam_targets(info: dict) -> list[str]:
    """Issue 13's ECAM targets against this run, and what was tried for them."""
    default, adaptive = info["default"], info["adaptive"]
    ratio = np.median(info["peer_us"]) / np.median(info["ours_us"])
    return [
        f"Targets (issue 13, whole stream): every default >= {TARGET_DEFAULT:.2f}: "
        f"{default:.3f}, {'met' if default >= TARGET_DEFAULT else 'MISSED'}; "
        f"adapt_rank=True started at k = {K} >= {TARGET_ADAPTIVE:.2f} (a goal): "
        f"{adaptive:.3f}, {'met' if adaptive >= TARGET_ADAPTIVE else 'MISSED'} (rank at the "
        f"end {info['adaptive_rank']}, {info['births']} births); per-sample speed >= 20x the "
        f"peer's partial_fit (medians): {ratio:.1f}x, {'met' if ratio >= 20 else 'MISSED'}. "
        "Every default on the stream with the samples of equal time shuffled (seeds "
        f"{', '.join(map(str, ORDER_SEEDS))}): "
        f"{' / '.join(f'{x:.3f}' for x in info['orders'])} (mean "
        f"{np.mean(info['orders']):.3f}; "
        f"{sum(x >= TARGET_DEFAULT for x in info['orders'])} of {len(info['orders'])} at or "
        f"above {TARGET_DEFAULT:.2f}): the default target is met on the bundled order, "
        "narrowly, and not robustly.",
        "",
        "What moved the default (issue 13, item 2, tuned on the first half in scratch runs of "
        "this protocol, 2026-12-04): stale statistics. A sample's h is solved against the W of "
        "its time and stays in the statistics until forgotten; at beta = 1 a refresh now "
        "re-solves the latest samples (up to buffer_size = 128, at most 8 per sample learned "
        "since the previous refresh, in both memories) against the new W, replaces their "
        "part of the statistics and takes the M-step again (onlinenmf.statistics, "
        "Statistics.restate): every default -3.558 -> -3.494 (first half -3.161 -> -3.141). "
        "First half over the samples restated: 32 / 64 / 96 / 128: -3.147 / -3.142 / -3.141 / "
        "-3.141 (whole -3.517 / -3.504 / -3.501 / -3.494); without the second M-step -3.146 "
        "(64); two restate-and-step sweeps per refresh -3.142 (128: no gain); restating the "
        "served memory only -3.150; at most 4 instead of 8 per sample -3.142 (64). Tried "
        "before (the investigation below): forgetting factors and schedule limits (best "
        "-3.543), Mairal weighting of young statistics (no gain), rebuilding the statistics "
        "from the buffer (no gain). Not tried: a per-sample O(nnz k) refresh at beta = 1."
        " Re-tuning the short memory with restating on (scratch, first half / whole): rho"
        " 0.97 prior 0.1 (the default) -3.141 / -3.494, 0.98 / 0.1 -3.130 / -3.506, 0.96 "
        "/ 0.1 -3.156 / -3.516, 0.97 / 0.05 -3.145 / -3.512, 0.97 / 0.2 -3.139 / -3.496: "
        "the first half would pick 0.98, which misses -3.50 on the whole; the default was"
        " left as it was chosen before (the investigation below).",
        "",
        "adapt_rank on ECAM (issue 13's goal): births used to wait for the loss of two refresh "
        "windows above 1.5x its floor, a drift-like jump that the infants' slow ageing never "
        "makes (-3.503, rank 10 throughout). Now, at every re-estimation with a full buffer, "
        "the recent samples are split in two interleaved halves; the positive residuals of one "
        "half, grouped by likeness, seed up to 3 columns, each kept if on the other half it "
        "lowers the summed relative loss by >= 0.5 % and takes >= 1 % of the activation "
        "(onlinenmf.hyper, Reestimator._grow): rank path "
        f"{info['rank_path']}, {info['adaptive']:.3f} on the whole stream; at k = {2 * K} from "
        f"the start every default scores {info['wide']:.3f}, a causal batch refit at k = 20 "
        "-3.229 (issue 13). Tuned on the first half (scratch runs of this protocol, "
        "2026-12-04; first half / whole): a loss that must first plateau (the latest window "
        "not more than 2-5 % under the previous) -3.129 / -3.405 (1 candidate; windows are too "
        "noisy, births come late); seeds from the worst samples' residuals -3.136 / -3.469, "
        "from all residuals summed -3.142 / -3.498, from the densest group -3.062 / -3.313 "
        "(1 candidate per re-estimation), 2 / 3 candidates -2.963 / -2.944 first half; trials "
        "from 40 recent samples instead of a full buffer -2.944 / -3.250 but 3 -> 10 on a "
        "planted stream of 6 (9 with a full buffer; both are pruned back to 6); a wait of 2 or "
        "3 re-estimations after a birth -3.046 / -3.299 and -3.055 / -3.326. Without the 1 % "
        "share, columns that only patch a few taxa the others miss (gain up to 14 %, share "
        "0.3 %) were born and pruned in turn on the planted streams of tests/test_hyper.py; "
        "grouping residuals at cosine 0.7-0.9 instead of 0.5 avoided blends there but cost "
        "ECAM 0.08-0.1 nats on the first half. The death rule is the ARD prune (relevance "
        "share under 1 % for 3 re-estimations); a held-out death test (retire the least used "
        "column if the other half's loss rises by < 0.5 % without it) was measured and not "
        "kept: a blend of two planted communities costs 13-19 % to remove, a useful column "
        "more, so it separates nothing the prune does not.",
    ]


#: Seeds of the stream orders with the samples of equal time shuffled.
ORDER_SEEDS = (1, 2, 3)
#: Issue 13's targets on the ECAM protocol (whole stream, nats per held-out read).
TARGET_DEFAULT = -3.50
TARGET_ADAPTIVE = -3.30


# ---------------------------------------------------------------------------------- defaults
#: The defaults of issue 13, one at a time: (label, parameters).
DEFAULT_STEPS = (
    ("old defaults (refresh_every=100, forget_factor=0.998, drift_threshold=None)",
     {"refresh_every": 100, "forget_factor": 0.998, "drift_threshold": None}),
    ("automatic schedule, forget_factor=0.998", {"forget_factor": 0.998}),
    ("automatic schedule, forget_factor=0.98", {"forget_factor": 0.98}),
    ("automatic schedule, forget_factor=0.97", {"forget_factor": 0.97}),
    ("every default (automatic schedule, two memories)", {}),
)
#: Samples of the planted stationary stream shown for contrast.
PLANTED_SAMPLES = 6000
#: Drift thresholds compared (the default is OnlineNMF's DRIFT_THRESHOLD).
DRIFT_THRESHOLDS = (3.0, 4.0, 4.5, 5.0, 6.0)
#: ECAM's stable stretch: the second year of life (days since birth).
ECAM_STABLE_DAY = 365
#: The spliced perturbation: SPLICE_LENGTH second-year samples put at SPLICE_AT (day ~80).
SPLICE_AT, SPLICE_LENGTH = 150, 5
#: The reversed splice: SPLICE_LENGTH first-year samples put at REVERSED_AT (the second year).
REVERSED_AT = 530


def planted_ratios(n: int = PLANTED_SAMPLES) -> list[float]:
    """For contrast, a stationary planted stream (synthetic: Poisson counts of 8 communities
    over 300 taxa, seed 11): each setting's mean prequential KL over the last quarter, over that
    of a batch KL NMF fitted on the whole stream (scikit-learn, multiplicative updates)."""
    from sklearn.decomposition import NMF

    from onlinenmf.datasets import make_poisson_stream
    from onlinenmf.divergence import beta_divergence

    stream = make_poisson_stream(n_features=300, n_components=8, n_samples=n, seed=11)
    nmf = NMF(8, beta_loss="kullback-leibler", solver="mu", init="nndsvdar", max_iter=400,
              tol=1e-6, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        H = nmf.fit_transform(stream.X)
    dense, last = stream.X.toarray(), slice(3 * n // 4, n)
    oracle = np.mean([beta_divergence(dense[i : i + 1], H[i : i + 1] @ nmf.components_, 1)
                      for i in range(last.start, n)])
    ratios = []
    for _, params in DEFAULT_STEPS:
        model = OnlineNMF(n_components=8, beta=1, seed=0, **params)
        model.learn_many(stream.X, features=stream.features)
        ratios.append(float(model.last_losses[last].mean() / oracle))
    return ratios


def defaults_section() -> list[str]:
    table = load_ecam()
    counts = table.counts.tocsr()
    names = list(table.features)
    stream = completion_stream(counts)
    n = len(stream)
    ratios = planted_ratios()
    lines = ["| setting | first dictionary after (samples) | refreshes | forget_factor switches "
             "| first half | second half | whole | planted stationary stream: loss / batch "
             "oracle |", "|---|---|---|---|---|---|---|---|"]
    for (label, params), ratio in zip(DEFAULT_STEPS, ratios):
        learner = Ours(names, **params)
        scores = run_stream(learner, stream, counts.shape[1])
        switches = sum(e.kind == "forget_factor" for e in learner.model.events)
        values = " | ".join(f"{scores.per_read(part):.3f}" for part in _halves(n).values())
        lines.append(f"| {label} | {learner.first_dictionary} | {learner.model.model_version} "
                     f"| {switches} | {values} | {ratio:.4f} |")
    return [
        "## The defaults, one at a time (ECAM document completion)",
        "",
        f"The protocol of the first table (k = {K}, scored from sample {START}). 'first "
        "dictionary after': the samples learned when W first changed from its random rows; "
        "'refreshes': model_version at the end; 'forget_factor switches': with the two "
        "memories (onlinenmf.memories), how often the one served changed. For contrast, the "
        "last column: a stationary planted stream (synthetic, "
        f"{PLANTED_SAMPLES} samples of 8 communities over 300 taxa, k = 8, learn_many), the "
        "mean prequential loss of its last quarter over a batch KL NMF's on the whole stream "
        "(the test suite's bar is 1.02).",
        "",
        *lines,
    ]


def _drift_samples(model: OnlineNMF) -> np.ndarray:
    """Positions (0-based stream index) of the samples after which a drift event fired."""
    return np.array([e.sample - 1 for e in model.events if e.kind == "drift"], dtype=np.int64)


def _learn_rows(model: OnlineNMF, counts: sp.csr_matrix, names: list[str], order) -> None:
    for i in order:
        part = slice(counts.indptr[i], counts.indptr[i + 1])
        model.learn_one(dict(zip((names[c] for c in counts.indices[part]), counts.data[part])))


#: More orders of the same streams, at the default threshold: each stable stretch shuffled
#: (seeded) this many times, and this many spliced replays (other samples) per onset.
DRIFT_SHUFFLES = 10
SPLICE_REPLAYS = 4
#: The onsets of the richer splices replayed (the splice section's and those between them).
REPLAYED_POSITIONS = (100, 150, 200, 250, 300, 350, 400)


def _first_after(drifts: np.ndarray, at: int) -> int | None:
    """Samples from the onset to the first drift event (1: its first sample), None if none
    within the splice and the SPLICE_SETTLE samples after it."""
    after = drifts[drifts >= at] - at + 1
    return int(after[0]) if after.size and after[0] <= SPLICE_LENGTH + SPLICE_SETTLE else None


def drift_orders(ecam_counts: sp.csr_matrix, ecam_names: list[str], days: np.ndarray,
                 gut_counts: sp.csr_matrix, gut_names: list[str], hours: np.ndarray) -> str:
    """The default threshold over more orders than the table's one: false events per 100
    stable samples over DRIFT_SHUFFLES shuffles of each stable stretch (the rest in order; its
    first SPLICE_SETTLE samples left out), and
    how many of SPLICE_REPLAYS replays per onset had an event within 3 samples of it. One order
    holds a handful of events (one in a vessel's 68 stable samples is 1.5 per 100)."""
    gut_stable = in_gut_stable_stretch(hours)
    rng = np.random.default_rng(0)
    false = {}
    for label, counts, names, stretch in (
            ("the artificial gut", gut_counts, gut_names, np.flatnonzero(gut_stable)),
            ("ECAM's second year", ecam_counts, ecam_names, ecam_years(days)[1])):
        events = 0
        for _ in range(DRIFT_SHUFFLES):
            order = np.arange(counts.shape[0])
            order[stretch] = rng.permutation(stretch)
            model = OnlineNMF(n_components=K, beta=1)
            _learn_rows(model, counts, names, order)
            # the stretch's first samples follow another state of the stream (the first year:
            # in a shuffled order a sample of any later day): left out, as after a splice
            events += int(np.isin(_drift_samples(model), stretch[SPLICE_SETTLE:]).sum())
        false[label] = (events, DRIFT_SHUFFLES * (stretch.size - SPLICE_SETTLE))
    found = {}
    for direction, positions, counts, names, make_order in (
            ("ECAM's richer", REPLAYED_POSITIONS, ecam_counts, ecam_names,
             lambda at, replay: spliced_order(days, at, replay)),
            ("ECAM's poorer", REVERSED_POSITIONS, ecam_counts, ecam_names,
             lambda at, replay: spliced_order(days, at, replay, reverse=True)),
            ("the gut's daily-phase", GUT_SPLICE_POSITIONS, gut_counts, gut_names,
             lambda at, replay: gut_spliced_order(hours, at, replay))):
        delays = []
        for at in positions:
            for replay in range(SPLICE_REPLAYS):
                order, _ = make_order(at, replay)
                model = OnlineNMF(n_components=K, beta=1)
                _learn_rows(model, counts, names, order)
                delays.append(_first_after(_drift_samples(model), at))
        found[direction] = (sum(d is not None and d <= 3 for d in delays),
                            sum(d is not None for d in delays), len(delays), positions)
    return (
        f"At the default threshold over more orders: with each stable stretch shuffled "
        f"({DRIFT_SHUFFLES} seeded orders, the rest of the stream in order; its first "
        f"{SPLICE_SETTLE} samples left out, as after a splice) "
        + ", ".join(f"{label} {100 * n / total:.2f} false events per 100 ({n} in {total})"
                    for label, (n, total) in false.items())
        + f"; {SPLICE_REPLAYS} spliced replays (other samples) per onset: "
        + ", ".join(f"{direction} samples at {', '.join(map(str, positions))}: an event within "
                    f"3 samples in {within} of {total}, within {SPLICE_LENGTH + SPLICE_SETTLE} "
                    f"in {any_} of {total}"
                    for direction, (within, any_, total, positions) in found.items())
        + ".")


def drift_section() -> list[str]:
    ecam = load_ecam()
    counts = ecam.counts.tocsr()
    names = list(ecam.features)
    days = ecam.metadata["time"].to_numpy()
    stable = days >= ECAM_STABLE_DAY
    later = np.flatnonzero(stable)
    spliced_in = later[:: max(1, later.size // SPLICE_LENGTH)][:SPLICE_LENGTH]
    rest = np.setdiff1d(np.arange(days.size), spliced_in)
    order = np.concatenate([rest[:SPLICE_AT], spliced_in, rest[SPLICE_AT:]])
    reversed_order, _ = spliced_order(days, REVERSED_AT, 0, reverse=True)
    gut_counts, gut_names, vessels, hours = gut_stream()
    gut_stable = in_gut_stable_stretch(hours)
    lines = ["| drift_threshold | ECAM: events / 100 second-year samples | ECAM: events in all "
             "(699 samples) | spliced ECAM: first event after the onset (samples; 1 = its first "
             "sample) | spliced ECAM: events / 100 samples outside the splice | reversed "
             "splice: first event after the onset | reversed splice: events / 100 samples "
             "outside it | gut: events / 100 stable hourly samples, per vessel | gut: first "
             "event after the challenge, per vessel (h) |", "|---|---|---|---|---|---|---|---|---|"]
    for threshold in DRIFT_THRESHOLDS:
        plain = OnlineNMF(n_components=K, beta=1, drift_threshold=threshold)
        _learn_rows(plain, counts, names, range(days.size))
        at = _drift_samples(plain)
        per_stable = 100 * stable[at].sum() / stable.sum()
        spliced = OnlineNMF(n_components=K, beta=1, drift_threshold=threshold)
        _learn_rows(spliced, counts, names, order)
        at_spliced = _drift_samples(spliced)
        after = at_spliced[at_spliced >= SPLICE_AT] - SPLICE_AT + 1
        outside = (at_spliced < SPLICE_AT) | (at_spliced >= SPLICE_AT + SPLICE_LENGTH + 20)
        poorer = OnlineNMF(n_components=K, beta=1, drift_threshold=threshold)
        _learn_rows(poorer, counts, names, reversed_order)
        at_poorer = _drift_samples(poorer)
        after_poorer = at_poorer[at_poorer >= REVERSED_AT] - REVERSED_AT + 1
        outside_poorer = ((at_poorer < REVERSED_AT)
                          | (at_poorer >= REVERSED_AT + SPLICE_LENGTH + 20))
        model = OnlineNMF(n_components=K, beta=1, drift_threshold=threshold)
        _learn_rows(model, gut_counts, gut_names, range(hours.size))
        at_gut = _drift_samples(model)
        rates, firsts = [], []
        for vessel in sorted(set(vessels)):
            mine = vessels == vessel
            stretch = gut_stable & mine
            rates.append(f"{100 * stretch[at_gut].sum() / stretch.sum():.1f}")
            late = at_gut[(hours[at_gut] >= CHALLENGE) & mine[at_gut]]
            firsts.append(f"{hours[late[0]] - CHALLENGE:.0f}" if late.size else "none")
        default = " (default)" if threshold == DEFAULT_DRIFT_THRESHOLD else ""
        lines.append(f"| {threshold:g}{default} | {per_stable:.1f} | {at.size} | "
                     f"{after[0] if after.size else 'none'} | "
                     f"{100 * outside.sum() / (order.size - SPLICE_LENGTH - 20):.1f} | "
                     f"{after_poorer[0] if after_poorer.size else 'none'} | "
                     f"{100 * outside_poorer.sum() / (order.size - SPLICE_LENGTH - 20):.1f} | "
                     f"{', '.join(rates)} | {', '.join(firsts)} |")
    return [
        "## Drift events (OnlineNMF's own, every other setting at its default)",
        "",
        f"ECAM in day-of-life order; its stable stretch is the second year of life (day >= "
        f"{ECAM_STABLE_DAY}, {stable.sum()} samples). Spliced: {SPLICE_LENGTH} second-year "
        f"samples moved to position {SPLICE_AT} (day {days[rest[SPLICE_AT]]:.0f} of life), the "
        f"rest in order; reversed: {SPLICE_LENGTH} first-year samples moved to position "
        f"{REVERSED_AT} (day {days[reversed_order[REVERSED_AT - 1]]:.0f}; the first replay of the "
        "splice section's reversed ones); 'outside the splice' leaves out the 20 samples after "
        "it. Artificial "
        f"gut: one model over the four vessels interleaved, stable stretch {STABLE[0]:.0f}-"
        f"{STABLE[1]:.0f} h (vessels 1-4 in order), the challenge at {CHALLENGE:.0f} h. The "
        "detector (onlinenmf.monitor.DriftDetector) sums, per sample, the z-score of the log "
        "prequential loss per read and how far, either way, the log number of taxa the sample "
        "carries lies from the usual (|z| centred by its mean under a Gaussian null), over "
        "sqrt(2 + 2 rho), rho the two parts' running correlation, plus half the positive side "
        "(centred) of the z-score of the log of its loss in the short memory over that in the "
        "long one (high when the stream's older states explain it better than its recent one).",
        "",
        *lines,
        "",
        drift_orders(counts, names, days, gut_counts, gut_names, hours),
    ]


# ---------------------------------------------------------------------------------- artificial gut
#: The Bacteroides ovatus challenge (hours since the first sample; "Post_Challenge" from here).
CHALLENGE = 529.0
#: The stable hourly stretch before the challenge, and the challenge window scored after it.
STABLE = (461.0, CHALLENGE)
WINDOW = 24.0  # hours: the windows compared around the challenge
#: Baseline and detectors look back this many samples of the same vessel.
LOOKBACK = 24
Z_ALARM = 3.0
GUT_MODELS = {"OnlineNMF, every default": {},
              "OnlineNMF, refresh_every=5, forget_factor=0.98": {"refresh_every": 5,
                                                                 "forget_factor": 0.98}}


def gut_stream() -> tuple[sp.csr_matrix, list[str], np.ndarray, np.ndarray]:
    """The artificial gut without its technical-noise replicates: counts, taxa, vessels, hours."""
    gut = load_artificial_gut()
    keep = (gut.metadata["Normal_Noise_Sample"] != "Noise_Estimation").to_numpy()
    meta = gut.metadata[keep].reset_index(drop=True)
    return (gut.counts.tocsr()[keep], list(gut.features), meta["subject"].to_numpy(),
            meta["time"].to_numpy())


def gut_scores(counts: sp.csr_matrix, names: list[str], subjects: np.ndarray, hours: np.ndarray
               ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Per vessel, in time order: each model's prequential KL per read (one model over the
    interleaved stream of the four vessels) and the Bray-Curtis distance of the sample's
    composition to the mean composition of the vessel's previous LOOKBACK samples."""
    from scipy.spatial.distance import braycurtis

    vessels = sorted(set(subjects))
    series: dict[str, dict[str, list[float]]] = {v: {} for v in vessels}
    for label, params in GUT_MODELS.items():
        model = OnlineNMF(n_components=K, beta=1, **params)
        for v in vessels:
            series[v][label] = []
        for i, vessel in enumerate(subjects):
            part = slice(counts.indptr[i], counts.indptr[i + 1])
            x = dict(zip((names[c] for c in counts.indices[part]), counts.data[part]))
            model.learn_one(x)
            series[vessel][label].append(model.last_loss / counts.data[part].sum())
    times = {}
    for v in vessels:
        rows = np.flatnonzero(subjects == v)
        times[v] = hours[rows]
        profiles = np.asarray(counts[rows].todense())
        profiles /= profiles.sum(axis=1, keepdims=True)
        distance = [np.nan] + [
            braycurtis(profiles[j], profiles[max(0, j - LOOKBACK):j].mean(axis=0))
            for j in range(1, len(rows))]
        series[v]["Bray-Curtis to the mean of the last 24"] = distance
    return {v: {k: np.asarray(s) for k, s in d.items()} for v, d in series.items()}, times


def z_alarms(x: np.ndarray) -> np.ndarray:
    """z-score of each value against the previous LOOKBACK values; alarm where z > Z_ALARM."""
    alarms = np.zeros(x.size, bool)
    for j in range(LOOKBACK, x.size):
        past = x[j - LOOKBACK:j]
        alarms[j] = (x[j] - past.mean()) > Z_ALARM * max(past.std(), 1e-12)
    return alarms


def page_hinkley_alarms(x: np.ndarray) -> np.ndarray:
    """river's PageHinkley (upward changes) on the series scaled by its first LOOKBACK
    values' standard deviation; an alarm wherever it signals."""
    from river.drift import PageHinkley

    scale = max(float(np.nanstd(x[1:LOOKBACK + 1])), 1e-12)
    detector = PageHinkley(min_instances=LOOKBACK, delta=0.5, threshold=10.0, mode="up")
    alarms = np.zeros(x.size, bool)
    for j, value in enumerate(x):
        if np.isfinite(value):
            detector.update(float(value) / scale)
            alarms[j] = detector.drift_detected
    return alarms


def gut_section() -> list[str]:
    from sklearn.metrics import roc_auc_score

    stream = gut_stream()
    series, times = gut_scores(*stream)
    kept = stream[3].size
    replicates = load_artificial_gut().counts.shape[0] - kept  # left out by gut_stream
    lines = ["| vessel | score | stable samples | z > 3 alarms / 100 stable | Page-Hinkley "
             "alarms / 100 stable | first z alarm after the challenge (h) | AUC 0-24 h after "
             "vs 24 h before | AUC 24-48 h after vs 24 h before |",
             "|---|---|---|---|---|---|---|---|"]

    def auc(x: np.ndarray, before: np.ndarray, after: np.ndarray) -> float:
        return roc_auc_score(np.r_[np.zeros(before.sum()), np.ones(after.sum())],
                             np.r_[x[before], x[after]])

    for vessel, scores in series.items():
        t = times[vessel]
        stable = in_gut_stable_stretch(t)
        before = (t >= CHALLENGE - WINDOW) & (t < CHALLENGE)
        first_day = (t >= CHALLENGE) & (t < CHALLENGE + WINDOW)
        second_day = (t >= CHALLENGE + WINDOW) & (t < CHALLENGE + 2 * WINDOW)
        for label, x in scores.items():
            z, ph = z_alarms(x), page_hinkley_alarms(x)
            after = np.flatnonzero(z & (t >= CHALLENGE))
            first = f"{t[after[0]] - CHALLENGE:.0f}" if after.size else "none"
            lines.append(f"| {vessel} | {label} | {stable.sum()} | "
                         f"{100 * z[stable].mean():.1f} | {100 * ph[stable].mean():.1f} | "
                         f"{first} | {auc(x, before, first_day):.2f} | "
                         f"{auc(x, before, second_day):.2f} |")
    return [
        "## Artificial gut: the challenge",
        "",
        f"Silverman et al. (2018): four vessels, daily then hourly samples; the "
        f"{replicates} technical-noise replicates are left out ({kept} "
        f"samples). One model learns the four vessels interleaved in time order, k = {K}; its "
        "score per sample is the prequential KL per read (``last_loss`` over the reads: the "
        "loss under the dictionary before the sample was learned). Baseline: Bray-Curtis "
        f"distance of the composition to the mean of the vessel's previous {LOOKBACK} samples. "
        f"Stable stretch: hourly samples from {STABLE[0]:.0f} h to the challenge at "
        f"{CHALLENGE:.0f} h. AUC: the scores of the samples 0-24 h (24-48 h) after the challenge "
        "against those of the 24 h before it (0.5: no difference). Alarms: z-score "
        f"> {Z_ALARM:.0f} against the vessel's previous {LOOKBACK} scores, and river's "
        "PageHinkley (mode 'up', delta 0.5, threshold 10, on the score over the standard "
        f"deviation of its first {LOOKBACK} values). These are raw signals for the drift "
        "events to come, not OnlineNMF's own events.",
        "",
        *lines,
    ]


# ---------------------------------------------------------------------------------- splices
#: The spliced replays: SPLICE_LENGTH second-year samples (a different set in each replay) put
#: into the first year of life at each of these stream positions, the rest in day-of-life order.
SPLICE_POSITIONS = (100, 200, 300, 400)
#: The reversed replays: SPLICE_LENGTH first-year samples (poorer: fewer taxa) put into the
#: second year of life (stream positions 504 on) at each of these positions. The splice
#: above is the direction a detector that rewards rich samples is tuned to; this one is not.
REVERSED_POSITIONS = (530, 570, 610, 650)
#: The artificial gut's replays: SPLICE_LENGTH samples of its daily phase (the first 19 days,
#: before the stable stretch; other vessels and days in each replay) put into its stable hourly
#: stretch (stream positions 68-336, the four vessels interleaved) at each of these positions:
#: the splice issue 13 names, another state's samples in a stable stretch.
GUT_SPLICE_POSITIONS = (128, 188, 248, 308)
#: Samples after a splice left out of 'outside' (the model settles back).
SPLICE_SETTLE = 20


def splice(pool: np.ndarray, n: int, at: int, replay: int) -> tuple[np.ndarray, np.ndarray]:
    """The stream order 0..n-1 with SPLICE_LENGTH samples of ``pool`` moved to position ``at``
    (replay r takes every n-th sample of the pool from the r-th on), the rest in order; and
    the moved samples' positions in the new order."""
    step = max(1, pool.size // SPLICE_LENGTH)
    moved = pool[replay % step :: step][:SPLICE_LENGTH]
    rest = np.setdiff1d(np.arange(n), moved)
    order = np.concatenate([rest[:at], moved, rest[at:]])
    return order, np.arange(at, at + moved.size)


def spliced_order(days: np.ndarray, at: int, replay: int, reverse: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """ECAM's stream order with SPLICE_LENGTH second-year samples (``reverse``: first-year
    samples) moved to position ``at`` (:func:`splice`)."""
    first_year, second_year = ecam_years(days)
    return splice(first_year if reverse else second_year, days.size, at, replay)


def gut_daily_phase(hours: np.ndarray) -> np.ndarray:
    """Rows of the artificial gut's daily phase: the samples before its stable stretch."""
    return np.flatnonzero(hours < STABLE[0])


def in_gut_stable_stretch(hours):
    """Whether a time (hours; an array or one number) is in the artificial gut's stable
    stretch: hourly samples from STABLE[0] to the challenge."""
    return (hours >= STABLE[0]) & (hours < STABLE[1])


def ecam_years(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ECAM's first year of life and of its second (from ECAM_STABLE_DAY on, when
    the infants' communities change least: its stable stretch)."""
    return np.flatnonzero(days < ECAM_STABLE_DAY), np.flatnonzero(days >= ECAM_STABLE_DAY)


def gut_spliced_order(hours: np.ndarray, at: int, replay: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The artificial gut's stream order with SPLICE_LENGTH samples of its daily phase moved
    to position ``at`` (:func:`splice`)."""
    return splice(gut_daily_phase(hours), hours.size, at, replay)


def splice_scores(counts: sp.csr_matrix, names: list[str], order: np.ndarray
                  ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per stream position: OnlineNMF's change scores at every default (its prequential KL per
    read, that over the median of the previous LOOKBACK samples', and its drift detector's
    per-sample score) and the Bray-Curtis distance of the composition to the mean of the
    previous LOOKBACK samples'; and the positions after which a drift event fired."""
    from scipy.spatial.distance import braycurtis

    model = OnlineNMF(n_components=K, beta=1)
    rows = counts[order]
    loss, drift = np.zeros(order.size), np.zeros(order.size)
    for i in range(order.size):
        part = slice(rows.indptr[i], rows.indptr[i + 1])
        model.learn_one(dict(zip((names[c] for c in rows.indices[part]), rows.data[part])))
        loss[i] = model.last_loss / rows.data[part].sum()
        drift[i] = model.last_drift_scores[-1]
    recent = np.array([np.median(loss[max(0, i - LOOKBACK):i]) if i else np.nan
                       for i in range(order.size)])
    profiles = np.asarray(rows.todense(), dtype=np.float64)
    profiles /= profiles.sum(axis=1, keepdims=True)
    distance = np.array([np.nan] + [braycurtis(profiles[i], profiles[max(0, i - LOOKBACK):i]
                                               .mean(axis=0)) for i in range(1, order.size)])
    scores = {"OnlineNMF: prequential KL per read": loss,
              f"OnlineNMF: that over its median over the previous {LOOKBACK}": loss / recent,
              DRIFT_SCORE: drift,
              f"Bray-Curtis to the mean of the previous {LOOKBACK}": distance}
    return scores, _drift_samples(model)


#: The drift detector's per-sample score (OnlineNMF.last_drift_scores), as the tables name it.
DRIFT_SCORE = ("OnlineNMF: drift score (loss, number of taxa and the memories' gap against "
               "the recent level)")


@dataclass
class Splices:
    """One set of the splice section's replays: the stream, which samples are moved (``pool``,
    rows of ``counts``), the onsets (replay r at the r-th), and the stream's stable stretch."""

    label: str
    counts: sp.csr_matrix
    names: list[str]
    times: np.ndarray
    when: str  # formats a sample's time: "day {:.0f}", "{:.0f} h"
    pool: np.ndarray
    positions: tuple[int, ...]
    stable: np.ndarray  # rows of the stable stretch
    stable_name: str


def splice_sets() -> list[Splices]:
    """The splice section's three sets: ECAM's richer and poorer splices, and the gut's."""
    ecam = load_ecam()
    counts, names = ecam.counts.tocsr(), list(ecam.features)
    days = ecam.metadata["time"].to_numpy()
    first_year, second_year = ecam_years(days)
    gut_counts, gut_names, _, hours = gut_stream()
    return [
        Splices("ECAM: second-year samples into the first year", counts, names, days,
                "day {:.0f}", second_year, SPLICE_POSITIONS, second_year, "ECAM's second year"),
        Splices("ECAM: first-year samples into the second year", counts, names, days,
                "day {:.0f}", first_year, REVERSED_POSITIONS, second_year, "ECAM's second year"),
        Splices("Artificial gut: daily-phase samples into the stable hourly stretch", gut_counts,
                gut_names, hours, "{:.0f} h", gut_daily_phase(hours),
                GUT_SPLICE_POSITIONS,
                np.flatnonzero(in_gut_stable_stretch(hours)),
                "the gut's hourly stretch before the challenge")]


def splice_section() -> list[str]:
    from sklearn.metrics import roc_auc_score

    lines = ["| onset (stream position, time) | score | AUC: spliced vs the rest | "
             "spliced samples in the score's top 5 % | first drift event after the onset "
             "(samples; 1 = its first sample) | drift events / 100 samples outside the splice "
             "|", "|---|---|---|---|---|---|"]
    summaries = []
    for splices in splice_sets():
        lines.append(f"| **{splices.label}** | | | | | |")
        aucs: dict[str, list[float]] = {}
        delays, falses, calm, richness, local, unscored = [], [], [], [], [], 0
        nnz = np.diff(splices.counts.indptr)
        for replay, at in enumerate(splices.positions):
            order, spliced = splice(splices.pool, splices.times.size, at, replay)
            scores, drifts = splice_scores(splices.counts, splices.names, order)
            when = splices.when.format(splices.times[order[at - 1]])
            after = drifts[drifts >= at] - at + 1
            delay = int(after[0]) if after.size and after[0] <= SPLICE_LENGTH + SPLICE_SETTLE \
                else None
            delays.append(delay)
            outside = np.ones(order.size, bool)
            outside[at : at + SPLICE_LENGTH + SPLICE_SETTLE] = False
            false = 100 * outside[drifts].sum() / outside.sum()
            falses.append(false)
            stable = outside & np.isin(order, splices.stable)  # the stable stretch outside it
            calm.append(100 * stable[drifts].sum() / stable.sum())
            around = nnz[order[max(0, at - LOOKBACK):at]]
            richness.append(np.median(nnz[order[spliced]]) / np.median(around))
            scored = np.arange(order.size) >= START  # every method has a dictionary by then
            label = np.isin(np.arange(order.size), spliced)
            unscored += int((scored & ~np.isfinite(scores[DRIFT_SCORE])).sum())
            local.extend(scores[f"OnlineNMF: that over its median over the previous {LOOKBACK}"]
                         [spliced])
            for name, x in scores.items():
                keep = scored & np.isfinite(x)
                auc = roc_auc_score(label[keep], x[keep])
                aucs.setdefault(name, []).append(auc)
                top = x[keep] >= np.quantile(x[keep], 0.95)
                events = (f"{delay if delay is not None else 'none'} | {false:.1f}"
                          if name.startswith("OnlineNMF: prequential") else "- | -")
                lines.append(f"| {at}, {when} | {name} | "
                             f"{auc:.2f} | {int((top & label[keep]).sum())} of {SPLICE_LENGTH} | "
                             f"{events} |")
        found = [d for d in delays if d is not None]
        summary = ", ".join(f"{name} {np.mean(v):.2f}" for name, v in aucs.items())
        summaries.append(
            f"{splices.label} (the spliced samples' median number of taxa "
            f"{', '.join(f'{r:.2f}' for r in richness)} times that of the {LOOKBACK} samples "
            f"before the onset; their loss per read {np.median(local):.2f} times the median of "
            f"the {LOOKBACK} samples before each, median over the {len(local)}): mean AUC over "
            f"the {len(splices.positions)} replays {summary} (samples without a drift score from "
            f"{START} on: {unscored}). Drift "
            f"events within {SPLICE_LENGTH + SPLICE_SETTLE} samples of the onset in "
            f"{len(found)} of {len(delays)} replays"
            + (f", after {', '.join(map(str, found))} samples" if found else "")
            + f"; within 3 samples in {sum(d <= 3 for d in found)} of {len(delays)}; "
            f"events outside the splice {', '.join(f'{f:.1f}' for f in falses)} per 100 "
            f"samples, among the samples of the stable stretch ({splices.stable_name}) outside "
            f"it {', '.join(f'{f:.1f}' for f in calm)} per 100.")
    return [
        "## Spliced perturbations: the loss against a Bray-Curtis baseline",
        "",
        f"ECAM in day-of-life order with {SPLICE_LENGTH} second-year samples (another set in "
        f"each replay) spliced into the first year at stream positions "
        f"{', '.join(map(str, SPLICE_POSITIONS))}, and reversed: {SPLICE_LENGTH} first-year "
        "samples (every n-th of the first year; poorer, fewer taxa, but for the newborns' "
        "first samples) spliced into the second year at "
        f"{', '.join(map(str, REVERSED_POSITIONS))}; the artificial gut (one stream of its four "
        f"vessels, as in the drift section) with {SPLICE_LENGTH} samples of its daily phase "
        f"(before {STABLE[0]:.0f} h: the community settling after inoculation) spliced into "
        f"its stable hourly stretch at {', '.join(map(str, GUT_SPLICE_POSITIONS))}, the kind "
        "of splice issue 13 names (another state's samples in a stable stretch); one "
        "OnlineNMF at every default per replay. "
        "AUC: the spliced samples' scores against those of every other sample from sample "
        f"{START} on (0.5: no better than chance). Scores: the prequential KL per read (under "
        "the dictionary before the sample was learned); the same over its median over the "
        f"previous {LOOKBACK} samples (a local level: the loss falls as the dictionary "
        "matures); the drift detector's own score of the sample (OnlineNMF.last_drift_scores: "
        "the z-score of its log loss per read against the stream's recent level, plus how "
        "far, richer or poorer, its log number of taxa lies from the usual, over sqrt(2 + 2 "
        "rho), plus half the centred positive side of the z-score of its log loss in the short "
        "memory over the long one, as the drift section says; scored against the previous "
        "reference while the detector sets a new one); the "
        "Bray-Curtis distance of the sample's composition to the mean of the "
        f"previous {LOOKBACK} samples' (the baseline). Drift events are OnlineNMF's own "
        f"(drift_threshold {DEFAULT_DRIFT_THRESHOLD:g}); 'outside' leaves out the splice and the "
        f"{SPLICE_SETTLE} samples after it; a first event later than that counts as none. "
        "Target (issue 13): a drift event within 3 samples of each onset.",
        "",
        *lines,
        *[line for summary in summaries for line in ("", summary)],
    ]


# ---------------------------------------------------------------------------------- tracker
class SharesAsSolved(Tracker):
    """The Tracker before its shares were compared under one dictionary: each sample's shares
    as solved, under whichever dictionary it met (for the comparison only)."""

    def _under_current(self, state, latest):
        return [*state.recent, latest]

    def _before(self, recent):
        return None


#: Tracker settings compared: (label, parameters, class); the first two are the behaviour
#: before issue 13 and before the shares were compared under one dictionary.
TRACKER_SETTINGS = (
    ("before: a crossing is an event (presence 0.05, absence 0.025, hold 1), shares as solved",
     {"hold": 1}, SharesAsSolved),
    ("hold 2, shares as solved (each under the dictionary it met)", {}, SharesAsSolved),
    ("defaults (presence 0.05, absence 0.025, hold 2, shares under one dictionary)", {},
     Tracker),
    ("hold 3", {"hold": 3}, Tracker),
    ("presence 0.1, absence 0.05, hold 2", {"presence": 0.1, "absence": 0.05}, Tracker),
)


def _track(counts: sp.csr_matrix, names: list[str], subjects: np.ndarray, times: np.ndarray,
           order, kind: type = Tracker, **params) -> tuple[Tracker, list[dict], np.ndarray]:
    """A Tracker (every other setting at its default) over the samples in ``order``; its
    appear/vanish events, each with ``moved``: whether the dictionary changed since the
    subject's previous sample (the event may be the dictionary's doing, not the subject's);
    and that flag for every sample (by row of ``counts``)."""
    tracker = kind(OnlineNMF(n_components=K, beta=1), **params)
    version: dict[str, int] = {}
    events = []
    moved = np.zeros(counts.shape[0], bool)
    for i in order:
        part = slice(counts.indptr[i], counts.indptr[i + 1])
        subject = str(subjects[i])
        before = version.get(subject, tracker.model.model_version)
        record = tracker.learn_one(dict(zip((names[c] for c in counts.indices[part]),
                                            counts.data[part])), subject=subject,
                                   time=float(times[i]))
        version[subject] = tracker.model.model_version
        moved[i] = before != record["model_version"]
        events += [{**e, "moved": moved[i]} for e in record["events"]
                   if e["kind"] in ("appear", "vanish")]
    return tracker, events, moved


def tracker_section() -> list[str]:
    ecam = load_ecam()
    counts = ecam.counts.tocsr()
    names = list(ecam.features)
    subjects = ecam.metadata["subject"].to_numpy()
    days = ecam.metadata["time"].to_numpy()
    stable = days >= ECAM_STABLE_DAY
    gut_counts, gut_names, vessels, hours = gut_stream()
    gut_stable = in_gut_stable_stretch(hours)
    lines = ["| setting | ECAM: appear + vanish events per sample | ECAM, second year | ECAM: "
             "share of them at a sample whose dictionary changed since the infant's previous "
             "one | gut: per stable hourly sample | gut, stable: share of them at a sample "
             "whose dictionary changed since the vessel's previous one |",
             "|---|---|---|---|---|---|"]

    def share_moved(events: list[dict]) -> str:
        return f"{100 * sum(e['moved'] for e in events) / max(len(events), 1):.0f} %"

    for label, params, kind in TRACKER_SETTINGS:
        _, events, ecam_moved = _track(counts, names, subjects, days, range(days.size), kind,
                                       **params)
        late = sum(e["time"] >= ECAM_STABLE_DAY for e in events)
        _, gut_events, gut_moved = _track(gut_counts, gut_names, vessels, hours,
                                          range(hours.size), kind, **params)
        calm = [e for e in gut_events if in_gut_stable_stretch(e["time"])]
        lines.append(f"| {label} | {len(events) / days.size:.2f} | {late / stable.sum():.2f} | "
                     f"{share_moved(events)} | {len(calm) / gut_stable.sum():.3f} | "
                     f"{share_moved(calm)} |")
    marks = ["| stream | samples marked | marks / 100 samples | marked among the spliced "
             "samples |", "|---|---|---|---|"]
    for replay, at in enumerate((None, *SPLICE_POSITIONS)):
        order, spliced = (np.arange(days.size), np.zeros(0, np.int64)) if at is None else \
            spliced_order(days, at, replay - 1)
        tracker, _, _ = _track(counts, names, subjects, days, order)
        moved = {(str(subjects[i]), float(days[i])) for i in order[spliced]}
        marked = [(e["subject"], e["time"]) for e in tracker.events if e["kind"] == "anomaly"]
        hits = f"{sum(m in moved for m in marked)} of {SPLICE_LENGTH}" if at else "-"
        name = "ECAM in day-of-life order" if at is None else f"ECAM spliced at {at}"
        marks.append(f"| {name} | {len(marked)} | {100 * len(marked) / days.size:.1f} | "
                     f"{hits} |")
    tracker, _, _ = _track(gut_counts, gut_names, vessels, hours, range(hours.size))
    marked = np.array([e["time"] for e in tracker.events if e["kind"] == "anomaly"])
    calm = in_gut_stable_stretch(marked).sum()
    after = np.sort(marked[(marked >= CHALLENGE) & (marked < CHALLENGE + WINDOW)]) - CHALLENGE
    return [
        "## Tracker: appear/vanish events and anomaly marks",
        "",
        "Every other setting at its default (the model's and the tracker's); ECAM with every "
        "infant a subject (times in days of life; second year: day >= "
        f"{ECAM_STABLE_DAY}, {stable.sum()} samples), the artificial gut with every vessel a "
        f"subject (stable: the {gut_stable.sum()} hourly samples from {STABLE[0]:.0f} h to the "
        "challenge). A community appears in a subject when its share is at least presence in "
        "each of the subject's last hold samples, and vanishes under absence in each of them. "
        "'Shares as solved': each sample's shares under the dictionary it met (the tracker "
        "before this comparison); 'under one dictionary' (the default): the subject's latest "
        "samples solved again under the current dictionary when it changed since, and a "
        "change must also show against the sample before them under that dictionary. The "
        "dictionary changed since the subject's previous sample before "
        f"{100 * ecam_moved.mean():.0f} % of ECAM's samples and "
        f"{100 * gut_moved[gut_stable].mean():.0f}"
        " % of the gut's stable ones (the default schedule), so the share of events that "
        "follow such a change mostly says how often W moves; what comparing under one "
        "dictionary removes is the difference between the two hold-2 rows.",
        "",
        *lines,
        "",
        "Anomaly marks at the defaults (anomaly_z 3.5: a sample's log loss per read against "
        "its subject's previous samples'), on ECAM in day-of-life order and on the spliced "
        "replays of the section above (a spliced sample is a second-year sample of its own "
        "infant, learned in the first months of the stream):",
        "",
        *marks,
        "",
        f"Artificial gut: {marked.size} samples marked in all ({100 * marked.size / hours.size:.1f}"
        f" per 100), {calm} in the stable hourly stretch ({100 * calm / gut_stable.sum():.1f} per "
        f"100), {after.size} in the {WINDOW:.0f} h after the challenge"
        + (f" (at {', '.join(f'{h:.0f}' for h in after)} h)." if after.size else "."),
    ]


#: The hand-written part of real.md: measured with scratch re-implementations, not by this bench;
#: carried over unchanged when the bench rewrites the file.
KEPT = "## Investigation"


#: The sections, in the file's order: name (for ``--only``) -> the function that measures it.
SECTIONS = {"ecam": ecam_section, "defaults": defaults_section, "drift": drift_section,
            "gut": gut_section, "splice": splice_section, "tracker": tracker_section}
TITLE = "# Real streams (benchmarks/bench_real.py)"


def _blocks(text: str) -> dict[str, str]:
    """The file's parts by heading: the title block, then each ``## `` section (a section
    runs to the next one)."""
    blocks: dict[str, str] = {}
    heading, lines = TITLE, []
    for line in text.splitlines():
        if line.startswith("## "):
            blocks[heading] = "\n".join(lines).strip("\n")
            heading, lines = line, []
        lines.append(line)
    blocks[heading] = "\n".join(lines).strip("\n")
    return blocks


def merge(old: str, new: dict[str, str]) -> str:
    """``old`` with the sections of ``new`` (heading -> text) in place of theirs; a section
    new to the file goes before the hand-written investigation (:data:`KEPT`)."""
    blocks = _blocks(old) if old else {TITLE: TITLE}
    for heading, text in new.items():
        if heading not in blocks:  # insert before the investigation, or at the end
            items = list(blocks.items())
            at = next((i for i, (h, _) in enumerate(items) if h.startswith(KEPT)), len(items))
            blocks = dict(items[:at] + [(heading, text)] + items[at:])
        blocks[heading] = text
    return "\n\n".join(blocks.values()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks real")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), metavar="SECTION",
                        help=f"measure these sections only ({', '.join(SECTIONS)}) and keep "
                        "the file's other sections as they are")
    args = parser.parse_args(argv or [])
    start = time.perf_counter()
    chosen = args.only or list(SECTIONS)
    new = {}
    for name in chosen:
        lines = SECTIONS[name]()
        if args.only:  # the section says what produced it: the rest of the file may not
            lines += ["", provenance(f"python -m benchmarks real --only {' '.join(chosen)}")]
        new[lines[0]] = "\n".join(lines)
        print(new[lines[0]], "\n", flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / "real.md"
    old = path.read_text() if path.exists() else ""
    if not args.only:  # a full run: the measured sections anew, the investigation kept
        kept = old[old.index(KEPT):] if KEPT in old else ""
        old = TITLE + ("\n\n" + kept if kept else "")
    path.write_text(merge(old, new))
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
