"""Feature names -> rows of W: samples and matrices as dictionary rows, and the initial row of
a feature seen for the first time.

Features are keyed by name, so a taxon first seen on day 300 just appears. A new feature's row
depends only on (seed, name) and on the columns' mean entry before the sample, never on the
order of the sample's keys: new names are added in a canonical order (by type, then value).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from itertools import repeat

import numpy as np
import scipy.sparse as sp

from onlinenmf._jit import COMPILED, njit
from onlinenmf.validation import check_feature_name, parse_matrix, parse_sample, surely_valid

#: Called with the validated names a learning call meets for the first time.
OnNew = Callable[[Sequence], None]


def initial_rows(seed: int, names: Sequence, colsum: np.ndarray, m: int) -> np.ndarray:
    """Initial rows for new features: U(0.5, 1.5) from (seed, name), times the mean entry of
    the columns (``colsum / m``; 1 before any feature).

    A name's draws are ``np.random.default_rng(entropy).uniform(0.5, 1.5, k)``, the entropy
    the 128 bits of a BLAKE2b hash of (seed, type, name). Compiled, the same draws come from
    :func:`_uniform_rows`, bit for bit (NumPy fixes the streams of SeedSequence and PCG64 for
    a given seed): seeding a Generator costs about 13 us a name, and on a stream whose
    vocabulary grows (ECAM: a new taxon in two samples of three) that was most of a sample's
    cost.
    """
    digests = b"".join([name_digest(seed, name) for name in names])
    if COMPILED:  # one compiled call: a new feature comes with a sample, every sample counts
        return _compiled_rows(digests, colsum, m)
    # interpreted, NumPy's own generator (the kernel's integer steps would warn)
    return _scaled(reference_draws(np.frombuffer(digests, dtype="<u4"), colsum.size), colsum, m)


#: Bytes of a name's digest (:func:`name_digest`).
DIGEST_SIZE = 16


def name_digest(seed: int, name: Hashable) -> bytes:
    """The bytes a name's initial row is drawn from (see :func:`initial_rows`)."""
    key = f"{seed}|{type(name).__name__}|{name}".encode()
    return hashlib.blake2b(key, digest_size=DIGEST_SIZE).digest()


@njit
def append_initial_rows(digests, W, colsum, m, W2, colsum2):
    """New features' rows of :func:`initial_rows` (``digests``: their :func:`name_digest`
    joined; ``colsum``, ``m``: the columns they are scaled by) written to rows ``m`` on of
    W, their sum (from zero, in order, as ``rows.sum(axis=0)``) added to ``colsum``; the
    same to ``W2`` and ``colsum2`` (a twin's) unless ``W2`` has no rows.

    What ``initial_rows`` then ``Statistics.add_rows`` do, in one compiled call: ECAM brings
    new taxa in two samples of three, and the numpy calls of those two, each paid again for
    its code gone cold between samples, cost the per-sample path some 30 us."""
    rows = _scaled(_uniform_rows(_entropy_words(digests), colsum.size), colsum, m)
    n, k = rows.shape
    total = np.zeros(k)
    for i in range(n):
        for j in range(k):
            W[m + i, j] = rows[i, j]
            total[j] += rows[i, j]
    for j in range(k):
        colsum[j] += total[j]
    if W2.shape[0]:
        for i in range(n):
            for j in range(k):
                W2[m + i, j] = rows[i, j]
        for j in range(k):
            colsum2[j] += total[j]


def reference_draws(words: np.ndarray, k: int) -> np.ndarray:
    """What :func:`_uniform_rows` computes, by NumPy's generator: one row per name (its
    entropy as four 32-bit words, least significant first)."""
    entropies = words.astype("<u4").reshape(-1, 4)
    rows = np.empty((entropies.shape[0], k))
    for i, name_words in enumerate(entropies):
        entropy = int.from_bytes(name_words.tobytes(), "little")
        rows[i] = np.random.default_rng(entropy).uniform(0.5, 1.5, k)
    return rows


@njit
def _compiled_rows(digests, colsum, m):
    """:func:`initial_rows` from the names' digests (bytes, 16 a name; passed as they are:
    a NumPy view of them would cost the per-sample path another call)."""
    return _scaled(_uniform_rows(_entropy_words(digests), colsum.size), colsum, m)


@njit
def _entropy_words(digests):
    """Each digest's entropy, ``int.from_bytes(digest, "little")``, as SeedSequence reads
    it: 32-bit words, least significant first, four a name."""
    words = np.empty(len(digests) // 4, np.uint64)
    for i in range(words.size):
        words[i] = (np.uint64(digests[4 * i]) | (np.uint64(digests[4 * i + 1]) << np.uint64(8))
                    | (np.uint64(digests[4 * i + 2]) << np.uint64(16))
                    | (np.uint64(digests[4 * i + 3]) << np.uint64(24)))
    return words


@njit
def _scaled(draws, colsum, m):
    """The draws times the columns' mean entry (``colsum / m``; where that is not positive,
    or before any feature, ``1 / max(m, 1)`` and 1)."""
    n, k = draws.shape
    out = np.empty((n, k))
    for j in range(k):
        level = colsum[j] / m if m else 1.0
        if not level > 0.0:
            level = 1.0 / max(m, 1)
        for i in range(n):
            out[i, j] = draws[i, j] * level
    return out


# NumPy's SeedSequence (O'Neill's seed_seq alternative; numpy/random/bit_generator.pyx) and
# PCG64 (XSL-RR 128/64; numpy/random/src/pcg64) as uint64 arithmetic: 32-bit words are kept
# masked, the 128-bit state is a (high, low) pair.
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT16 = np.uint64(16)
_SHIFT32 = np.uint64(32)
_INIT_A, _MULT_A = np.uint64(0x43B0D7E5), np.uint64(0x931E8875)
_INIT_B, _MULT_B = np.uint64(0x8B51F9DD), np.uint64(0x58F38DED)
_MIX_L, _MIX_R = np.uint64(0xCA01F9DD), np.uint64(0x4973F715)
_PCG_HIGH, _PCG_LOW = np.uint64(2549297995355413924), np.uint64(4865540595714422341)
_ONE, _ZERO = np.uint64(1), np.uint64(0)


@njit
def _hashmix(value, const):
    value = (value ^ const) & _MASK32
    const = (const * _MULT_A) & _MASK32
    value = (value * const) & _MASK32
    return value ^ (value >> _SHIFT16), const


@njit
def _mix(x, y):
    result = (_MIX_L * x - _MIX_R * y) & _MASK32
    return result ^ (result >> _SHIFT16)


@njit
def _mul_high(a, b):
    """The high 64 bits of the 128-bit product of two uint64."""
    a_low, a_high = a & _MASK32, a >> _SHIFT32
    b_low, b_high = b & _MASK32, b >> _SHIFT32
    cross = a_high * b_low
    middle = ((a_low * b_low) >> _SHIFT32) + (cross & _MASK32) + a_low * b_high
    return a_high * b_high + (cross >> _SHIFT32) + (middle >> _SHIFT32)


@njit
def _pcg_step(high, low, inc_high, inc_low):
    """state * multiplier + inc, modulo 2^128."""
    product_high = _mul_high(low, _PCG_LOW) + low * _PCG_HIGH + high * _PCG_LOW
    product_low = low * _PCG_LOW
    new_low = product_low + inc_low
    carry = _ONE if new_low < product_low else _ZERO
    return product_high + inc_high + carry, new_low


@njit
def _uniform_rows(words, k):
    """``default_rng(entropy).uniform(0.5, 1.5, k)`` for each entropy in ``words`` (uint32,
    four words an entropy, least significant first)."""
    n = words.size // 4
    out = np.empty((n, k))
    pool = np.empty(4, np.uint64)
    state = np.empty(8, np.uint64)
    for s in range(n):
        # SeedSequence(entropy): the pool (a 128-bit entropy fills its 4 words; missing high
        # words hash as zeros, as SeedSequence does)
        const = _INIT_A
        for i in range(4):
            pool[i], const = _hashmix(np.uint64(words[4 * s + i]), const)
        for source in range(4):
            for target in range(4):
                if source != target:
                    hashed, const = _hashmix(pool[source], const)
                    pool[target] = _mix(pool[target], hashed)
        # .generate_state(4, np.uint64): 8 words
        const = _INIT_B
        for i in range(8):
            value = (pool[i % 4] ^ const) & _MASK32
            const = (const * _MULT_B) & _MASK32
            value = (value * const) & _MASK32
            state[i] = value ^ (value >> _SHIFT16)
        seed_high = state[0] | (state[1] << _SHIFT32)
        seed_low = state[2] | (state[3] << _SHIFT32)
        inc_high = (state[4] | (state[5] << _SHIFT32)) << _ONE | (state[7] >> np.uint64(31))
        inc_low = (state[6] | (state[7] << _SHIFT32)) << _ONE | _ONE
        # PCG64 seeding (pcg_setseq_128_srandom_r): step, add the seed, step
        high, low = _pcg_step(_ZERO, _ZERO, inc_high, inc_low)
        added = low + seed_low
        high = high + seed_high + (_ONE if added < low else _ZERO)
        high, low = _pcg_step(high, added, inc_high, inc_low)
        for j in range(k):
            high, low = _pcg_step(high, low, inc_high, inc_low)
            x = high ^ low
            rotation = high >> np.uint64(58)
            x = (x >> rotation) | (x << ((np.uint64(64) - rotation) & np.uint64(63)))
            # next_double, then Generator.uniform: low + (high - low) * u
            out[s, j] = 0.5 + 1.0 * ((x >> np.uint64(11)) * (1.0 / 9007199254740992.0))
    return out


#: Samples with at most this many non-zero entries are sorted by insertion (no allocation).
INSERTION_SORTED = 64


@njit
def _in_row_order(rows, values):
    """In place: the entries with a value above 0 and a row (>= 0) first, sorted by row
    (rows are distinct: one per name); return how many there are."""
    count = 0
    for i in range(rows.size):
        if values[i] > 0.0 and rows[i] >= 0:
            rows[count] = rows[i]
            values[count] = values[i]
            count += 1
    if count > INSERTION_SORTED:
        order = np.argsort(rows[:count])
        rows[:count] = rows[:count][order]
        values[:count] = values[:count][order]
        return count
    for i in range(1, count):
        row, value = rows[i], values[i]
        j = i - 1
        while j >= 0 and rows[j] > row:
            rows[j + 1] = rows[j]
            values[j + 1] = values[j]
            j -= 1
        rows[j + 1] = row
        values[j + 1] = value
    return count


#: What :func:`_valid_in_row_order` returns (as its first count) when a value is not surely
#: valid.
NOT_SURELY_VALID = -1


@njit
def _valid_in_row_order(rows, values):
    """For values that pass :func:`onlinenmf.validation.surely_valid`, in place: the known
    features' entries (row >= 0) with a value above 0 first, sorted by row (as
    :func:`_in_row_order`), then every unseen feature's entry (row -1), in the sample's order,
    its row replaced by its position in the sample and its value kept (0 included: an unseen
    name is registered even with a zero). Returns (known entries kept, unseen entries), or
    (NOT_SURELY_VALID, 0) with nothing moved.

    A sample that brings new features is put in order by this one call: their rows, given
    after it, come after every known row (:meth:`FeatureIndex.add` appends)."""
    if not surely_valid(values):
        return NOT_SURELY_VALID, 0
    unseen = 0
    for i in range(rows.size):
        if rows[i] < 0:
            unseen += 1
    if unseen == 0:
        return _in_row_order(rows, values), 0
    positions = np.empty(unseen, np.int64)
    unseen_values = np.empty(unseen)
    u = 0
    for i in range(rows.size):
        if rows[i] < 0:
            positions[u] = i
            unseen_values[u] = values[i]
            u += 1
    known = _in_row_order(rows, values)  # drops the unseen entries: kept aside above
    rows[known : known + unseen] = positions
    values[known : known + unseen] = unseen_values
    return known, unseen


class FeatureIndex:
    """The row of W of every feature name, in order of first appearance.

    >>> index = FeatureIndex()
    >>> index.add(index.new_names(["b", "a", "b"]))
    >>> index.names, index.index
    (['a', 'b'], {'a': 0, 'b': 1})
    >>> rows, values = index.sample_rows({"b": 2.0, "zz": 1.0, "a": 0.0}, on_new=None)
    >>> rows.tolist(), values.tolist()  # non-zero entries of known features, in row order
    ([1], [2.0])
    """

    def __init__(self) -> None:
        self.names: list[Hashable] = []
        self.index: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self.names)

    def new_names(self, names: Sequence) -> list:
        """The names not seen before (validated), once each, in the canonical order."""
        if len(names) == 1:  # a sample's one new feature, a stream's usual case
            return [] if names[0] in self.index else list(names)
        new = [name for name in dict.fromkeys(names) if name not in self.index]
        new.sort(key=lambda name: (type(name).__name__, name))
        return new

    def add(self, names: Sequence) -> None:
        """Append rows for names given by :meth:`new_names`."""
        start = len(self.names)
        for offset, name in enumerate(names):
            self.index[name] = start + offset
            self.names.append(name)

    def remove(self, names: Sequence) -> np.ndarray:
        """Forget known names; return which of the previous rows are kept (one boolean per
        row): the other names' rows close up in order.

        >>> index = FeatureIndex()
        >>> index.add(["a", "b", "c"])
        >>> index.remove(["b"]).tolist(), index.index
        ([True, False, True], {'a': 0, 'c': 1})
        """
        keep = np.ones(len(self.names), dtype=np.bool_)
        keep[[self.index[name] for name in names]] = False
        self.names = [name for name, kept in zip(self.names, keep) if kept]
        self.index = {name: i for i, name in enumerate(self.names)}
        return keep

    def sample_rows(self, x: Mapping, on_new: OnNew | None) -> tuple[np.ndarray, np.ndarray]:
        """Validate a sample and return (dictionary rows, values) of its non-zero entries, in
        row order (sums over the sample then cannot depend on the order of its keys).
        Unknown features go to ``on_new`` (which adds them) or, without it, are ignored."""
        if type(x) is dict and x:
            found = self._dict_sample(x, on_new)
            if found is not None:
                return found
        names, values = parse_sample(x)
        get = self.index.get
        checked = [check_feature_name(name) for name in names if name not in self.index]
        if checked and on_new is not None:
            on_new(checked)
        rows = np.fromiter((get(name, -1) for name in names), np.int64, len(names))
        count = _in_row_order(rows, values)
        return rows[:count], values[:count]

    def _dict_sample(self, x: dict, on_new: OnNew | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The per-sample path: a dict of numbers, checked, its zeros dropped and put in row
        order by one compiled call; names not seen yet are registered after it, and their
        entries, whose rows come after every known row, put in order among themselves. None
        when the values are not surely valid (or not numbers): the full path then decides and
        names what is wrong, before any state changes."""
        try:
            values = np.array(list(x.values()))
        except (TypeError, ValueError):
            return None
        if values.dtype.kind not in "biuf" or values.ndim != 1:
            return None
        values = values.astype(np.float64, copy=False)  # a fresh array either way
        rows = np.fromiter(map(self.index.get, x, repeat(-1)), np.int64, len(x))  # -1: unseen
        known, unseen = _valid_in_row_order(rows, values)
        if known == NOT_SURELY_VALID:
            return None
        if unseen:  # valid values; names seen for the first time
            end = known + unseen
            names = list(x)
            checked = [check_feature_name(names[i]) for i in rows[known:end].tolist()]
            if on_new is None:
                return rows[:known], values[:known]
            on_new(checked)
            index = self.index
            new = []  # a loop, not a comprehension: no frame of its own on the hot path
            for name, value in zip(checked, values[known:end].tolist()):
                if value > 0:
                    new.append((index[name], value))
            new.sort()  # their rows follow every known row: only they are put in order here
            for i, (row, value) in enumerate(new, start=known):
                rows[i] = row
                values[i] = value
            known += len(new)
        return rows[:known], values[:known]

    def matrix_rows(self, X, features: Sequence | None, on_new: OnNew | None) -> sp.csr_matrix:
        """Validate a matrix; return it as CSR whose column indices are dictionary rows (each
        row's entries in row order, as :meth:`sample_rows` gives them)."""
        matrix, names = parse_matrix(X, features)
        if on_new is not None:
            on_new(names)
        mapping = np.fromiter((self.index.get(n, -1) for n in names), np.int64, len(names))
        columns = mapping[matrix.indices]
        keep = columns >= 0
        shape = (matrix.shape[0], max(len(self.names), 1))
        if keep.all():
            mapped = sp.csr_matrix((matrix.data, columns, matrix.indptr), shape=shape)
        else:  # unknown features (transform only) are ignored
            row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
            counts = np.bincount(row_of[keep], minlength=matrix.shape[0])
            indptr = np.concatenate([[0], np.cumsum(counts)])
            mapped = sp.csr_matrix((matrix.data[keep], columns[keep], indptr), shape=shape)
        mapped.has_sorted_indices = False
        # sorted into a copy: in place would permute the data of the caller's CSR matrix,
        # which ``mapped`` shares when every feature is known
        return mapped.sorted_indices()

    def restore(self, names: Sequence) -> None:
        """The index of a snapshot's feature names (validated again)."""
        self.names = [check_feature_name(name) for name in names]
        self.index = {name: i for i, name in enumerate(self.names)}
