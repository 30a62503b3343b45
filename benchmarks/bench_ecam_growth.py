"""Community growth on the ECAM infant cohort (issue 5), compared with Bokulich et al. 2016.

Streams the 699 infant samples (42 infants, 0-24 months) in day-of-life order through an
:class:`~onlinenmf.OnlineNMF` driven by a :class:`~onlinenmf.Tracker`, then asks:

1. Which communities rise and fall with age: per infant, the Theil-Sen slope of the log
   share of each community over 0-24 months (per month); across infants, the median slope with
   a 95 % bootstrap interval and a Wilcoxon signed-rank test against 0, Benjamini-Hochberg
   adjusted over the k communities; and the population mean share by age.
2. Vaginal vs cesarean birth in months 0-6: per infant, the mean share of each community over
   its samples of days 0-182; Mann-Whitney U between the 24 vaginally and 18 cesarean-born
   infants (two-sided; Benjamini-Hochberg over the k communities); effect sizes: the difference
   of the group means with a 95 % bootstrap interval, and P(vaginal > cesarean) = U / (n1 n2).
   The same test on the raw relative abundance of genus Bacteroides / phylum Bacteroidetes
   checks the community picture against the data without the model, and the age at which the
   Bacteroides share first reaches 5 % (in the model's reconstruction and in the reads) tests
   "delayed" establishment (each pair of tests adjusted as a family of two).

Every community tested is reported, whatever its p-value. Intervals: percentile bootstrap,
9,999 resamples, seed 0 (infants resampled within each group).

Bokulich et al. (2016, Sci Transl Med 8:343ra82), abstract: "Cesarean section led to depleted
Bacteroidetes populations, altering establishment of maternal bacteria"; "Antibiotics delayed
microbiome development and suppressed Clostridiales, including Lachnospiraceae".

Run: ``python -m benchmarks ecam_growth`` (about 15 s). Writes ``benchmarks/output/
ecam_growth.md`` (the numbers) and ``ecam_report.html`` (the tracker's HTML report).
"""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks import _output
from consumers.report import write_report
from onlinenmf import OnlineNMF, Tracker
from onlinenmf.datasets import load_ecam

MONTH = 30.4375  # days
K = 8
OUTPUT = _output.OUTPUT
RESAMPLES = 9_999


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


def short_names(tracker: Tracker, top: int = 2) -> dict[int, str]:
    """The top taxa of each community without rank prefixes, ids or shares ("Bacteroides +
    Bacteroides fragilis"): a label for tables."""
    out = {}
    for component, pairs in tracker.model.components(top=top).items():
        labels = [re.sub(r"^[a-z]__|\s*\([0-9a-f]+\)$", "", str(tracker.labels.get(f, f)))
                  for f, _ in pairs]
        out[component] = " + ".join(dict.fromkeys(labels))
    return out


def p_text(p: float) -> str:
    return f"{p:.2g}"


def interval(low: float, high: float, digits: int = 3) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def median_interval(values: np.ndarray) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median."""
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    ci = stats.bootstrap((values,), np.median, n_resamples=RESAMPLES, method="percentile",
                         random_state=0).confidence_interval
    return float(ci.low), float(ci.high)


def mean_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """mean(a) - mean(b) with its 95 % percentile-bootstrap interval (each group resampled)."""
    def difference(x, y, axis=-1):
        return x.mean(axis=axis) - y.mean(axis=axis)

    ci = stats.bootstrap((a, b), difference, n_resamples=RESAMPLES, method="percentile",
                         vectorized=True, random_state=0).confidence_interval
    return float(a.mean() - b.mean()), float(ci.low), float(ci.high)


def adjusted(p: pd.Series) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy's false_discovery_control)."""
    return stats.false_discovery_control(p.to_numpy(dtype=float), method="bh")


def age_trends(tracker: Tracker) -> pd.DataFrame:
    table = tracker.growth_table()
    table["rate"] *= MONTH  # per month
    population = tracker.population(bin_width=MONTH)
    labels = short_names(tracker)
    rows = []
    for component, part in table.groupby("component"):
        rates = part["rate"].to_numpy()
        p = stats.wilcoxon(rates).pvalue if (rates != 0).any() else 1.0
        shares = population[population["component"] == component].set_index("bin")["mean_share"]
        low, high = median_interval(rates)
        rows.append({
            "community": component, "top taxa": labels.get(component, "(retired)"),
            "infants": len(part), "median rate / month": f"{np.median(rates):.3f}",
            "95 % CI": interval(low, high),
            "rising / falling infants": f"{int((part['low'] > 0).sum())} / "
                                        f"{int((part['high'] < 0).sum())}",
            "Wilcoxon p": float(p),
            "share 0-3 m": f"{shares[shares.index < 3 * MONTH].mean():.3f}",
            "share 18-24 m": f"{shares[shares.index >= 18 * MONTH].mean():.3f}",
            "Spearman (age)": f"{stats.spearmanr(shares.index, shares.to_numpy()).statistic:.2f}",
        })
    result = pd.DataFrame(rows)
    result.insert(result.columns.get_loc("Wilcoxon p") + 1, "BH p", adjusted(result["Wilcoxon p"]))
    for column in ("Wilcoxon p", "BH p"):
        result[column] = result[column].map(p_text)
    return result


def mann_whitney(a: pd.Series, b: pd.Series) -> dict:
    """Two-sided Mann-Whitney U of a vs b, with the effect sizes the report gives."""
    test = stats.mannwhitneyu(a, b, alternative="two-sided")
    diff, low, high = mean_difference(a.to_numpy(float), b.to_numpy(float))
    return {"U": float(test.statistic), "p": float(test.pvalue),
            "P(V > C)": float(test.statistic) / (len(a) * len(b)),
            "difference": diff, "low": low, "high": high}


def delivery_months_0_6(tracker: Tracker, table) -> tuple[pd.DataFrame, pd.DataFrame]:
    meta = table.metadata.drop_duplicates("subject").set_index("subject")
    delivery = meta["delivery"]
    labels = short_names(tracker)
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
        test = mann_whitney(vaginal[component], cesarean[component])
        rows.append({"community": component, "top taxa": labels.get(component, "(retired)"),
                     "vaginal mean": f"{vaginal[component].mean():.3f}",
                     "cesarean mean": f"{cesarean[component].mean():.3f}",
                     "difference [95 % CI]": f"{test['difference']:+.3f} "
                                             + interval(test["low"], test["high"]),
                     "P(V > C)": f"{test['P(V > C)']:.2f}", "U": f"{test['U']:.0f}",
                     "p": test["p"]})
    result = pd.DataFrame(rows)
    result["BH p"] = adjusted(result["p"])
    for column in ("p", "BH p"):
        result[column] = result[column].map(p_text)

    # Model-free check on the raw reads: relative abundance of Bacteroides / Bacteroidetes.
    counts = table.counts
    depth = np.asarray(counts.sum(axis=1)).ravel()
    taxonomy = [table.taxonomy.get(f, "") for f in table.features]
    checks = []
    for name, marker in (("genus Bacteroides, share of reads", "g__Bacteroides;"),
                         ("phylum Bacteroidetes, share of reads", "p__Bacteroidetes;")):
        columns = np.array([marker in t + ";" for t in taxonomy])
        share = np.asarray(counts[:, columns].sum(axis=1)).ravel() / depth
        frame = pd.DataFrame({"subject": table.metadata["subject"], "time": table.metadata["time"],
                              "share": share})
        per_infant = frame[frame["time"] < 6 * MONTH].groupby("subject")["share"].mean()
        groups = delivery.reindex(per_infant.index)
        checks.append(("raw reads", name, per_infant[groups == "Vaginal"],
                       per_infant[groups == "Cesarean"]))

    # "Delayed Bacteroides": the age at which Bacteroides first reaches 5 % of a sample, as the
    # model sees it (the Bacteroides share of W h, i.e. h weighted by each community's
    # Bacteroides content) and in the raw reads. Infants never reaching it count at their
    # last sample (so the comparison is conservative for the later group).
    rows_b = np.array(["g__Bacteroides" in table.taxonomy.get(f, "")
                       for f in tracker.model.features])
    content = dict(zip(tracker.model.component_ids, tracker.model.W[rows_b].sum(axis=0)))
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
    for name, series_of in (("the model's reconstruction", model_share),
                            ("raw reads", raw_series)):
        first = {}
        for subject, series in series_of.items():
            reached = series[series >= 0.05]
            first[subject] = (reached.index[0] if len(reached) else series.index[-1]) / MONTH
        first = pd.Series(first)
        groups = delivery.reindex(first.index)
        checks.append((name, "first month with a Bacteroides share >= 5 %",
                       first[groups == "Vaginal"], first[groups == "Cesarean"]))
    out = []
    for source, measure, v, c in checks:
        test = mann_whitney(v, c)
        out.append({"measure": measure, "from": source, "n (V, C)": f"{len(v)}, {len(c)}",
                    "vaginal median": f"{v.median():.3f}", "cesarean median": f"{c.median():.3f}",
                    "difference of means [95 % CI]": f"{test['difference']:+.3f} "
                                                     + interval(test["low"], test["high"]),
                    "P(V > C)": f"{test['P(V > C)']:.2f}", "p": test["p"]})
    out = pd.DataFrame(out)
    # each pair (share of reads; first month at 5 %) is a family of two tests
    out["BH p (pair)"] = np.concatenate([adjusted(out["p"][:2]), adjusted(out["p"][2:])])
    for column in ("p", "BH p (pair)"):
        out[column] = out[column].map(p_text)
    return result, out


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table (pandas' to_markdown needs tabulate, not a dependency here)."""
    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float | np.floating) else str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *body])


def main() -> None:
    header = _output.provenance("python -m benchmarks ecam_growth")
    table = load_ecam()
    tracker, seconds = run_tracker(table)
    names = community_names(tracker)
    trends = age_trends(tracker)
    delivery, checks = delivery_months_0_6(tracker, table)
    lines = [
        "# ECAM: community growth with age, vaginal vs cesarean (months 0-6)",
        "",
        header,
        "",
        f"Model: OnlineNMF(k={K}, beta=1, refresh_every=50, seed=0), one pass over "
        f"{table.n_samples} samples of {len(tracker.subjects)} infants in day-of-life order, "
        f"tracked with Tracker(growth_of='composition', reproject=True, presence=0.05) in "
        f"{seconds:.1f} s. Intervals: 95 % percentile bootstrap ({RESAMPLES:,} resamples, "
        "seed 0). BH p: Benjamini-Hochberg adjusted over the rows of the table (every "
        "community tested is listed).",
        "",
        "Compared with Bokulich et al. (2016), Sci Transl Med 8:343ra82: cesarean section "
        "depleted Bacteroidetes and delayed the establishment of maternal bacteria.",
        "",
        "## Communities (top 3 taxa, share of the community)",
        "",
        *[f"- {c}: {n}" for c, n in names.items()],
        "",
        "## Rise and fall with age",
        "",
        "Per infant, the Theil-Sen slope of the community's log share against age (per month) "
        "and whether its 95 % interval lies above (rising) or below (falling) 0; across "
        "infants, the median slope with its interval and a Wilcoxon signed-rank test against "
        "0 (zero slopes, from infants in whom the community never appears, left out of the "
        "test by its default zero_method); the population's mean share in months 0-3 and "
        "18-24, and the Spearman correlation of the monthly mean share with age.",
        "",
        markdown(trends),
        "",
        "## Vaginal (24) vs cesarean (18), mean community share over days 0-182",
        "",
        "Mann-Whitney U, two-sided; difference = vaginal mean - cesarean mean; P(V > C) = U / "
        "(n1 n2), the probability that a vaginally born infant's share exceeds a cesarean-born "
        "one's, ties counting half (0.5: no difference).",
        "",
        markdown(delivery),
        "",
        "## Bacteroides without the model, and its establishment (Mann-Whitney U)",
        "",
        "Share of reads: per infant, the mean over its samples of days 0-182. First month: "
        "infants that never reach a 5 % share count at their last sample. BH p adjusted within "
        "each pair of rows.",
        "",
        markdown(checks),
    ]
    text = "\n".join(lines)
    print(text)
    _output.write("ecam_growth.md", lines)
    report = write_report(tracker, OUTPUT / "ecam_report.html", time_unit_name="days",
                          title="ECAM infant cohort: communities over the first 2 years")
    print(f"\nreport: {report}")


if __name__ == "__main__":
    main()
