"""The measures behind benchmarks/output/reco_findings.md that are not a replay: which events
a factor model could help (warm share) and the factors' change per bucket of user history."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks import reco_variants


def test_warm_share_counts_events_whose_user_and_item_both_have_history():
    # u rates a, b, a, b, a, b, then v rates a. Earlier ratings of the event's user:
    # 0, 1, 2, 3, 4, 5, 0; of its item: 0, 0, 1, 1, 2, 2, 3.
    df = pd.DataFrame({"user": ["u"] * 6 + ["v"], "item": ["a", "b"] * 3 + ["a"]})
    assert reco_variants.warm_share(df, least=2) == 2 / 7  # u's 5th (a, 2) and 6th (b, 2)
    assert reco_variants.warm_share(df, least=0) == 1.0
    assert reco_variants.warm_share(df, least=1) == 4 / 7  # u's 3rd-6th; v is new


def test_bucket_rows_compare_the_same_events_with_and_without_factors():
    prior = np.array([0, 1, 5, 30, 150, 150])
    ours = {"errors": np.array([1.0, 1.0, 1.0, 1.0, 0.5, 0.5]), "prior": prior}
    without = {"errors": np.array([1.0, 1.0, 1.0, 2.0, 1.0, 1.0]), "prior": prior}
    rows = reco_variants._bucket_rows("s", ours, without)
    assert rows == ["| s | 0 | 17% | 1.0000 | 1.0000 | +0.00 % |",
                    "| s | 1-19 | 33% | 1.0000 | 1.0000 | +0.00 % |",
                    "| s | 20-99 | 17% | 1.0000 | 2.0000 | -50.00 % |",
                    "| s | 100+ | 33% | 0.5000 | 1.0000 | -50.00 % |"]
