"""``onlinenmf compile`` puts every kernel the estimators call into numba's cache, so that a
later process (a consumer of a group, a container's worker) loads them instead of compiling:
about 15 s and 170 MB it would keep otherwise (benchmarks/output/start.md). Checked with numba's own
counters in fresh processes sharing one empty cache directory, on the bundled real data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from onlinenmf import COMPILED
from tests.kafka_broker import ROOT, cli

pytestmark = pytest.mark.skipif(not COMPILED, reason="numba is not in use here")

#: A user's process after ``onlinenmf compile``: the paths of the bundled demos and
#: consumers on real data (ECAM through the tracker, one sample at a time and as a CSR
#: batch; MovieTweetings ratings; State of the Union paragraphs), then numba's counters.
USER_PROCESS = """
import json
from onlinenmf import OnlineNMF, Tracker
from onlinenmf.compiled import kernel_counts
from onlinenmf.datasets import load_ecam, load_movietweetings, load_state_of_the_union
from onlinenmf.reco import RecoNMF
from onlinenmf.text import TopicModel

ecam = load_ecam()
counts, names = ecam.counts.tocsr(), list(ecam.features)
tracker = Tracker(OnlineNMF(n_components=10, beta=1))
for i, row in enumerate(ecam.metadata.itertuples()):
    if i == 150:
        break
    part = slice(counts.indptr[i], counts.indptr[i + 1])
    x = dict(zip((names[c] for c in counts.indices[part]), counts.data[part]))
    tracker.learn_one(x, subject=row.subject, time=row.time)
OnlineNMF(n_components=10, beta=1).learn_many(counts[:150], features=names)
reco = RecoNMF(n_components=10, rating_range=(0, 10))
for row in load_movietweetings().head(500).itertuples():
    reco.predict_one(row.user, row.item)
    reco.learn_one(row.user, row.item, row.value)
topics = TopicModel(n_components=5)
for text in load_state_of_the_union()["text"].head(100):
    topics.learn_one(text)
compiled, loaded = kernel_counts()
print(json.dumps({"compiled": compiled, "loaded": loaded}))
"""


def run(args: list[str], cache: str) -> str:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def counted(line: str) -> dict[str, int]:
    """``onlinenmf compile``'s line as numbers."""
    found = re.search(r"(\d+) compiled now, (\d+) already in the cache", line)
    assert found, line
    return {"compiled": int(found.group(1)), "loaded": int(found.group(2))}


def test_a_process_after_compile_compiles_nothing(tmp_path):
    cache = str(tmp_path / "numba-cache")
    first = counted(run(cli("compile"), cache))
    assert first["compiled"] >= 50 and first["loaded"] == 0, first  # an empty cache
    again = counted(run(cli("compile"), cache))
    assert again["compiled"] == 0 and again["loaded"] > 0, again
    counts = json.loads(run([sys.executable, "-c", USER_PROCESS], cache).splitlines()[-1])
    assert counts["compiled"] == 0 and counts["loaded"] > 0, counts
