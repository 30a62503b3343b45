"""Topics of 236 years of State of the Union addresses, learned as a stream (issue 19).

Every 4th paragraph chunk of the addresses (1790-2026, ../shared/data/text/state_of_the_union)
in time order goes once through :class:`onlinenmf.text.TopicStream`: the topics' top words,
when each topic emerged, peaked and faded (its share of the documents per 20-year bin), the
topics' births and retirements, and the words strong in two topics (the seed's "lead").

    python examples/state_of_the_union.py [--every 4] [--bin-years 20]

In-process; the same documents go through Kafka with ``onlinenmf produce text --table
docs.tsv`` and ``onlinenmf consume text`` (the records carry each document's topic mix).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import pandas as pd

from onlinenmf.datasets.text import STATE_OF_THE_UNION
from onlinenmf.text import TopicStream, eras, polysemous

DATA = STATE_OF_THE_UNION
DAYS_PER_YEAR = 365.25
EPOCH_YEAR = 1970


def year(days: float | None) -> str:
    """Days since 1970-01-01 as a year ('-' for None)."""
    return "-" if days is None else str(round(EPOCH_YEAR + days / DAYS_PER_YEAR))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the chunks' TSV (.xz read)")
    parser.add_argument("--every", type=int, default=4, help="every n-th chunk")
    parser.add_argument("--bin-years", type=float, default=20, help="years per time bin")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"state_of_the_union: {args.data} not found; pass --data", file=sys.stderr)
        return 2
    frame = pd.read_csv(args.data, sep="\t", quoting=csv.QUOTE_NONE, dtype=str,
                        keep_default_na=False).iloc[:: args.every]
    days = (pd.to_datetime(frame["date"]) - pd.Timestamp("1970-01-01")).dt.days.tolist()
    stream = TopicStream(bin_width=args.bin_years * DAYS_PER_YEAR)
    start = time.perf_counter()
    for when, text in zip(days, frame["text"]):
        stream.learn_one(text, when)
    seconds = time.perf_counter() - start
    print(f"{len(frame):,} documents in {seconds:.1f} s "
          f"({len(frame) / seconds:,.0f} documents/s, topic tracking included)\n")

    topics = stream.model.topics(8)
    print("topic  emerged  peak (share)  faded   top words")
    for era in sorted(eras(stream.prevalence()), key=lambda e: e["peak"]):
        print(f"{era['topic']:>5}  {year(era['emerged']):>7}  {year(era['peak']):>4} "
              f"({era['peak_share']:.2f})  {year(era['faded']):>6}   "
              f"{' '.join(topics[era['topic']])}")
    events = stream.events()
    print(f"\ntopic births and retirements: {len(events)}")
    for event in events[:10]:
        print(f"  {event['kind']} of topic {event['component']} ({event.get('detail') or ''})")
    pairs = polysemous(stream.model, top=20)
    print("\nwords among the top 20 of two topics:")
    for word, first, second in pairs[:10]:
        print(f"  {word}: topic {first} ({' '.join(topics[first][:4])}) and topic {second} "
              f"({' '.join(topics[second][:4])})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
