"""Community growth on the ECAM infant cohort (issue 5), compared with Bokulich et al. 2016.

Streams the 699 infant samples (42 infants, 0-24 months) in day-of-life order through an
:class:`~onlinenmf.OnlineNMF` driven by a :class:`~onlinenmf.Tracker`, then asks:

1. Which communities rise and fall with age: per infant, the Theil-Sen slope of the log
   share of each community over 0-24 months (per month); across infants, the median slope and a
   Wilcoxon signed-rank test against 0; and the population mean share by age.
2. Vaginal vs cesarean birth in months 0-6: per infant, the mean share of each community over
   its samples of days 0-182; Mann-Whitney U between the 24 vaginally and 18 cesarean-born
   infants (two-sided; Benjamini-Hochberg over the communities). The same test on the raw
   relative abundance of genus Bacteroides / phylum Bacteroidetes checks the community picture
   against the data without the model, and the age at which the Bacteroides community first
   reaches a 5 % share tests "delayed" establishment.

Bokulich et al. (2016, Sci Transl Med 8:343ra82), abstract: "Cesarean section led to depleted
Bacteroidetes populations, altering establishment of maternal bacteria"; "Antibiotics delayed
microbiome development and suppressed Clostridiales, including Lachnospiraceae".

Run: ``python -m benchmarks ecam_growth`` (about 15 s). Writes ``benchmarks/output/
ecam_growth.md`` (the numbers) and ``ecam_report.html`` (the tracker's HTML report).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from onlinenmf import OnlineNMF, Tracker
from onlinenmf.datasets import load_ecam
from onlinenmf.report import write_report

MONTH = 30.4375  # days
K = 8
OUTPUT = Path(__file__).parent / "output"


def run_tracker(table) -> tuple[Tracker, float]:
    names = dict(zip(table.features, table.taxon_names()))
    tracker = Tracker(OnlineNMF(n_components=K, beta=1, refresh_every=50, seed=0),
                      growth_of="composition", reproject=True, bin_width=MONTH,
                      presence=0.05, labels=names)
    start = time.perf_counter()
    for record in table.records():
        tracker.learn_one(record["counts"], subject=record["subject"], time=record["time"])
    return tracker, time.perf_counter() - start


def community_names(tracker: Tracker, top: int = 3) -> dict[int, str]:
    out = {}
    for component, pairs in tracker.model.components(top=top).items():
        out[component] = ", ".join(f"{tracker.labels.get(f, f)} {share:.0%}"
                                   for f, share in pairs)
    return out


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table (pandas' to_markdown needs tabulate, not a dependency here)."""
    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float | np.floating) else str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *body])


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values."""
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(adjusted)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def age_trends(tracker: Tracker) -> pd.DataFrame:
    table = tracker.growth_table()
    table["rate"] *= MONTH  # per month
    population = tracker.population(bin_width=MONTH)
    rows = []
    for component, part in table.groupby("component"):
        wilcoxon = stats.wilcoxon(part["rate"]) if (part["rate"] != 0).any() else None
        shares = population[population["component"] == component].set_index("bin")["mean_share"]
        early = shares[shares.index < 3 * MONTH].mean()
        late = shares[shares.index >= 18 * MONTH].mean()
        rho = stats.spearmanr(shares.index, shares.to_numpy()).statistic
        rows.append({
            "community": component, "infants": len(part),
            "median_rate_per_month": part["rate"].median(),
            "rising": int((part["low"] > 0).sum()), "falling": int((part["high"] < 0).sum()),
            "wilcoxon_p": wilcoxon.pvalue if wilcoxon else 1.0,
            "share_0_3m": early, "share_18_24m": late, "spearman_age": rho,
        })
    return pd.DataFrame(rows)


def delivery_months_0_6(tracker: Tracker, table) -> tuple[pd.DataFrame, dict]:
    meta = table.metadata.drop_duplicates("subject").set_index("subject")
    delivery = meta["delivery"]
    shares = {}
    for subject in tracker.subjects:
        trajectory = tracker.trajectory(subject, "composition").fillna(0.0)
        early = trajectory[trajectory.index < 6 * MONTH]
        if len(early):
            shares[subject] = early.mean()
    shares = pd.DataFrame(shares).T.fillna(0.0)
    vaginal = shares[delivery.reindex(shares.index) == "Vaginal"]
    cesarean = shares[delivery.reindex(shares.index) == "Cesarean"]
    rows = []
    for component in shares.columns:
        test = stats.mannwhitneyu(vaginal[component], cesarean[component],
                                  alternative="two-sided")
        rows.append({"community": component, "vaginal_mean": vaginal[component].mean(),
                     "cesarean_mean": cesarean[component].mean(), "U": test.statistic,
                     "p": test.pvalue})
    result = pd.DataFrame(rows)
    result["p_bh"] = bh(result["p"].to_numpy())

    # Model-free check on the raw reads: relative abundance of Bacteroides / Bacteroidetes.
    counts = table.counts
    depth = np.asarray(counts.sum(axis=1)).ravel()
    taxonomy = [table.taxonomy.get(f, "") for f in table.features]
    raw = {}
    for name, marker in (("g__Bacteroides", "g__Bacteroides;"),
                         ("p__Bacteroidetes", "p__Bacteroidetes;")):
        columns = np.array([marker in t + ";" for t in taxonomy])
        share = np.asarray(counts[:, columns].sum(axis=1)).ravel() / depth
        frame = pd.DataFrame({"subject": table.metadata["subject"], "time": table.metadata["time"],
                              "share": share})
        per_infant = frame[frame["time"] < 6 * MONTH].groupby("subject")["share"].mean()
        groups = delivery.reindex(per_infant.index)
        v, c = per_infant[groups == "Vaginal"], per_infant[groups == "Cesarean"]
        test = stats.mannwhitneyu(v, c, alternative="two-sided")
        raw[name] = {"vaginal_median": float(v.median()), "cesarean_median": float(c.median()),
                     "U": float(test.statistic), "p": float(test.pvalue), "n": (len(v), len(c))}

    # "Delayed Bacteroides": the age at which Bacteroides first reaches 5 % of a sample, as the
    # model sees it (the Bacteroides share of W h, i.e. h weighted by each community's
    # Bacteroides content) and in the raw reads. Infants never reaching it count at their
    # last sample (so the comparison is conservative for the later group).
    rows = np.array(["g__Bacteroides" in table.taxonomy.get(f, "")
                     for f in tracker.model.features])
    content = dict(zip(tracker.model.component_ids, tracker.model.W[rows].sum(axis=0)))
    model_share = {}
    for subject in tracker.subjects:
        trajectory = tracker.trajectory(subject, "composition").fillna(0.0)
        model_share[subject] = trajectory @ pd.Series(content).reindex(trajectory.columns,
                                                                         fill_value=0.0)
    raw_rows = np.array(["g__Bacteroides" in t for t in taxonomy])
    raw_share = np.asarray(counts[:, raw_rows].sum(axis=1)).ravel() / depth
    frame = pd.DataFrame({"subject": table.metadata["subject"],
                          "time": table.metadata["time"], "share": raw_share})
    raw_series = {s: part.set_index("time")["share"] for s, part in frame.groupby("subject")}
    for name, series_of in (("bacteroides_5pct_first_month_model", model_share),
                            ("bacteroides_5pct_first_month_raw", raw_series)):
        first = {}
        for subject, series in series_of.items():
            reached = series[series >= 0.05]
            first[subject] = (reached.index[0] if len(reached) else series.index[-1]) / MONTH
        first = pd.Series(first)
        groups = delivery.reindex(first.index)
        v, c = first[groups == "Vaginal"], first[groups == "Cesarean"]
        test = stats.mannwhitneyu(v, c, alternative="two-sided")
        raw[name] = {"vaginal_median": float(v.median()), "cesarean_median": float(c.median()),
                     "U": float(test.statistic), "p": float(test.pvalue), "n": (len(v), len(c))}
    return result, raw


def main() -> None:
    table = load_ecam()
    tracker, seconds = run_tracker(table)
    names = community_names(tracker)
    trends = age_trends(tracker)
    delivery, raw = delivery_months_0_6(tracker, table)
    pd.set_option("display.width", 160)
    lines = [
        "# ECAM: community growth with age, vaginal vs cesarean (months 0-6)",
        "",
        f"Model: OnlineNMF(k={K}, beta=1, refresh_every=50, seed=0), one pass over "
        f"{table.n_samples} samples in day-of-life order, tracked with Tracker(growth_of="
        f"'composition', reproject=True) in {seconds:.1f} s.",
        "",
        "## Communities (top 3 taxa, share of the community)",
        "",
        *[f"- {c}: {n}" for c, n in names.items()],
        "",
        "## Rise and fall with age (rates: log share per month, per infant, Theil-Sen)",
        "",
        markdown(trends),
        "",
        "## Vaginal (24) vs cesarean (18), mean community share over days 0-182",
        "",
        markdown(delivery),
        "",
        "## Bacteroides: raw share in days 0-182, first month at a 5 % share (Mann-Whitney U)",
        "",
        *[f"- {name}: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in value.items()) for name, value in raw.items()],
    ]
    text = "\n".join(lines)
    print(text)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "ecam_growth.md").write_text(text + "\n")
    report = write_report(tracker, OUTPUT / "ecam_report.html", time_unit_name="days",
                          title="ECAM infant cohort: communities over the first 2 years")
    print(f"\nreport: {report}")


if __name__ == "__main__":
    main()
