"""Replay a table into a Kafka topic, in time order, with a progress bar.

``onlinenmf produce KIND --bootstrap-servers H:P --topic T [--table TSV|BIOM --metadata
TSV]`` sends the messages of the kind's producer (:mod:`consumers.kinds`; e.g.
:mod:`consumers.microbiome.producer`: one message per sample, key = subject id). Without
``--table`` it replays a bundled cohort (``--dataset``, default ECAM). A file that cannot be
used is one line on stderr and exit status 2, before any broker is contacted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from consumers.config import check_kafka_settings
from consumers.kinds import STREAM_KINDS
from consumers.options import (
    add_kafka_options,
    add_option,
    parse_kafka_settings,
    setup_logging,
)
from consumers.outcomes import EXIT_BROKER_LOST, EXIT_SETUP
from consumers.topics import topic_name

__all__ = ["HELP", "add_arguments", "run"]

#: ``onlinenmf produce --help`` (plain text for the command line); the kinds are listed from
#: the registry, :data:`consumers.kinds.STREAM_KINDS`.
HELP = """\
Replay a table into a Kafka topic in time order, one message per record of the kind's
input schema. The kinds and their default topics:

""" + "".join(f"  {name:<12} {kind.topics.input}\n"
              for name, kind in sorted(STREAM_KINDS.items())) + """

microbiome: one message per sample, keyed by subject. Without --table, a bundled cohort
is replayed (--dataset ecam, artificial_gut or moving_pictures). With --table and
--metadata, your own data:

  counts (--table)   TSV or CSV with samples as rows, or features as rows (a '#OTU ID'
                     header, as 'biom convert --to-tsv' writes); BIOM JSON; BIOM HDF5
                     (needs h5py). Which side holds the samples is found from the
                     metadata's sample ids.
  metadata           TSV or CSV, one row per sample; a QIIME 2 '#q2:types' row is skipped.
    sample id        sample_id, sample-id, #SampleID, sample_name, id (else the first
                     column), or --sample-column
    subject          subject, subject_id, host_subject_id, host, individual, participant,
                     patient, animal, mouse, vessel ..., or --subject-column
    time             time, day, days, day_of_life, days_since_experiment_start, timepoint,
                     date, collection_date, collection-day, timestamp ..., or
                     --time-column. Numbers are sent as they are (days); dates become
                     days since 1970-01-01, as the consumer reads ISO dates.

Samples without a metadata row, a time, a subject or any read are skipped with a warning.

reco: one message per rating event, keyed by user (--dataset movietweetings, or --table).
text: one message per document, keyed by document id; --table is a TSV with columns
doc_id, text and time (days) or date (ISO); any other column is sent as meta.

A file or -X setting that cannot be used is reported in one line (exit status 2) before
any broker is contacted; no broker answering is exit status 3.

examples:
  onlinenmf produce microbiome --bootstrap-servers 127.0.0.1:9092
  onlinenmf produce microbiome --dataset artificial_gut --limit 100
  onlinenmf produce microbiome --table feature-table.tsv --metadata samples.tsv
  onlinenmf produce microbiome --table table.biom --metadata samples.tsv \\
      --subject-column mouse --time-column collection_date --topic my.samples
  onlinenmf produce reco --dataset movietweetings --rate 500
  onlinenmf produce text --table chunks.tsv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf produce``."""
    parser.add_argument("kind", choices=sorted(STREAM_KINDS), help="which stream to produce")
    add_kafka_options(parser)
    add_option(parser, "--topic", default=None, type=topic_name,
               help="topic to write to (default: " + ", ".join(
                   f"{kind.topics.input} ({name})" for name, kind in STREAM_KINDS.items()) + ")")
    add_option(parser, "--dataset", default="ecam",
               help="bundled cohort when no --table: ecam, artificial_gut, moving_pictures")
    add_option(parser, "--table", type=Path,
               help="counts table: TSV/CSV (samples or features as rows), BIOM JSON or HDF5")
    add_option(parser, "--metadata", type=Path,
               help="sample metadata TSV/CSV (with --table): sample id, subject, time")
    add_option(parser, "--sample-column",
               help="metadata column of the sample id (default: a usual name, else the first)")
    add_option(parser, "--subject-column",
               help="metadata column of the subject (default: a usual name, e.g. subject)")
    add_option(parser, "--time-column",
               help="metadata column of the time, in days or dates (default: a usual name, "
               "e.g. day, date, collection_date)")
    add_option(parser, "--limit", type=int, help="send at most this many samples")
    add_option(parser, "--rate", type=float, help="at most this many messages per second")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_option(parser, "--log-level", default="WARNING", help="logging level")


def run(args: argparse.Namespace) -> int:
    """Send the stream, wait for every acknowledgement, report the count."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError
    from tqdm import tqdm

    setup_logging(args.log_level)
    kind = STREAM_KINDS[args.kind]
    args.topic = args.topic or kind.topics.input
    try:  # the input is read (and a user's mistake refused) before the broker is contacted
        settings = parse_kafka_settings(args.kafka_config)
        check_kafka_settings(settings)
        messages = kind.messages(args)
    except (ValueError, OSError, argparse.ArgumentTypeError) as err:
        print(f"onlinenmf produce: {err}", file=sys.stderr)
        return EXIT_SETUP
    try:
        producer = KafkaProducer(**{
            "bootstrap_servers": args.bootstrap_servers, "acks": "all", "linger_ms": 5,
            "batch_size": 256 * 1024, "max_request_size": 8 * 1024 * 1024, **settings,
        })
    except KafkaTimeoutError as err:
        print(f"onlinenmf produce: no Kafka broker at {args.bootstrap_servers} answered "
              f"({type(err).__name__}); start one (onlinenmf broker) or check "
              "--bootstrap-servers", file=sys.stderr)
        return EXIT_BROKER_LOST
    failures: list[Exception] = []
    sent = 0
    start = time.monotonic()
    try:
        bar = tqdm(messages, unit="msg", disable=args.no_progress,
                   desc=f"-> {args.topic}", file=sys.stderr)
        for key, value in bar:
            future = producer.send(args.topic, key=key, value=value)
            future.add_errback(failures.append)
            sent += 1
            if args.rate:
                ahead = sent / args.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush(timeout=60)
    except (ValueError, KeyError, OSError) as err:  # the table or metadata is unusable
        print(f"onlinenmf produce: {err}", file=sys.stderr)
        return EXIT_SETUP
    finally:
        producer.close(timeout=10)
    if failures:
        print(f"onlinenmf produce: {len(failures)} of {sent} messages failed: {failures[0]}",
              file=sys.stderr)
        return 1
    print(f"sent {sent} messages to {args.topic} in {time.monotonic() - start:.1f}s",
          file=sys.stderr)
    return 0
