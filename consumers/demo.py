"""Demo: the ECAM infant cohort (or, ``onlinenmf demo text``, the State of the Union
addresses) streamed through Kafka into the online NMF consumer.

Starts the embedded broker (Tansu, loopback, in memory), replays the 699 infant samples of
ECAM (Bokulich et al. 2016) into ``microbiome.samples`` in time order, runs the consumer
until the stream is drained (checkpoints, outputs, model versions, metrics), then prints
the communities with their top taxa by name and a few infants' trajectories, and leaves
everything in an output folder: the consumer's output records, the model versions, the
checkpoint (``onlinenmf inspect --checkpoint-dir <folder>/checkpoints``) and an HTML report.
The broker is stopped at the end.

``onlinenmf demo text`` does the same with every 4th paragraph chunk of the 237 State of the
Union addresses (1790-2026; ``--data``, default the bundled copy,
:data:`onlinenmf.datasets.text.STATE_OF_THE_UNION`) through ``onlinenmf consume text``'s
application: it prints the topics' top words and writes the documents' topic mixes, the
topics' versions, the checkpoint and the text report (topics, their prevalence over time,
births and retirements).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from consumers.microbiome.schema import TOPICS
from consumers.topics import Topics, ensure_topics
from onlinenmf.datasets.text import STATE_OF_THE_UNION

__all__ = ["add_arguments", "run", "run_demo", "run_text_demo"]

SUBJECTS = ("C001", "C010", "C021", "C035")

#: Components of each demo when --components is not given.
DEFAULT_COMPONENTS = {"microbiome": 8, "text": 15}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf demo``."""
    parser.add_argument("kind", nargs="?", choices=sorted(DEFAULT_COMPONENTS),
                        default="microbiome",
                        help="microbiome (ECAM, the default) or text (State of the Union)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the outputs (default: demo-output, or "
                        "demo-output-text)")
    parser.add_argument("--components", type=int, default=None,
                        help="communities or topics (rank k; default: 8, or 15 for text)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--data", type=Path, default=Path(STATE_OF_THE_UNION),
                        help="text: the chunks' TSV (doc_id, date, text; .xz read)")
    parser.add_argument("--every", type=int, default=4,
                        help="text: every n-th chunk (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None,
                        help="text: at most this many documents")


def _read_topic(bootstrap: str, topic: str, expect: int | None, timeout: float = 30.0
                ) -> list[Any]:
    """Every record of ``topic`` from the beginning (assign, no group)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = consumer.partitions_for_topic(topic) or set()
    consumer.assign([TopicPartition(topic, p) for p in parts])
    consumer.seek_to_beginning()
    records: list[Any] = []
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quiet < 3:
        batch = consumer.poll(timeout_ms=300)
        got = [r for rs in batch.values() for r in rs]
        records.extend(got)
        quiet = 0 if got else quiet + 1
        if expect is not None and len(records) >= expect and not got:
            break
    consumer.close()
    return records


def _trajectory_line(tracker: Any, subject: str, names: dict[int, str]) -> str:
    comp = tracker.trajectory(subject, kind="composition")
    steps = []
    for time_, row in comp.iterrows():
        top = int(row.idxmax())
        steps.append((float(time_), top, float(row.max())))
    # one entry per change of dominant community (plus the last), to keep it readable
    kept = [s for i, s in enumerate(steps) if i == 0 or s[1] != steps[i - 1][1]]
    if kept[-1] is not steps[-1]:
        kept.append(steps[-1])
    return " -> ".join(f"d{t:.0f} {names.get(c, f'C{c}')} {share:.0%}" for t, c, share in kept)


class DemoFailed(RuntimeError):
    """The demo's consumer could not finish (its one-line reason is already logged)."""


def run_demo(out: Path, components: int = 8, report: bool = True) -> dict[str, Any]:
    """Run the whole demo; return what it measured (used by the test)."""
    from consumers.broker import EMBEDDED_GROUP_SETTINGS, EmbeddedBroker
    from consumers.loop import ConsumerLoop, LoopConfig
    from consumers.metrics import ConsumerMetrics
    from consumers.microbiome import MicrobiomeApp, encode_sample
    from onlinenmf.datasets import load_ecam

    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    for old in ckpt_dir.glob("*.ckpt"):  # a rerun starts a fresh model, like the broker
        old.unlink()
    table = load_ecam()
    print(f"ECAM: {table.n_samples} samples of {table.metadata['subject'].nunique()} infants, "
          f"{table.n_features} taxa (ASVs)")
    with EmbeddedBroker(log_path=out / "broker.log") as broker:
        print(f"broker (Tansu, in memory) on {broker.bootstrap}")
        _replay(broker.bootstrap, TOPICS, (
            (rec["subject"].encode(), encode_sample(rec["subject"], rec["time"],
                                                    rec["sample_id"], rec["counts"], rec["meta"]))
            for rec in table.records()), total=table.n_samples, unit="sample")

        metrics = ConsumerMetrics()
        app = MicrobiomeApp(model_params={"n_components": components, "beta": 1,
                                          "refresh_every": 50, "seed": 0},
                            output_topic=TOPICS.output, model_topic=TOPICS.model)
        loop = ConsumerLoop(app, LoopConfig(
            bootstrap_servers=broker.bootstrap, topics=[TOPICS.input], group_id="onlinenmf-demo",
            checkpoint_dir=ckpt_dir, worker_id="demo", checkpoint_every=200,
            exit_when_idle=2.0,
            # Tansu joins a group in about session_timeout_ms / 2 (real Kafka: keep >= 6 s)
            consumer_config=dict(EMBEDDED_GROUP_SETTINGS),
        ), metrics)
        print("consuming until the stream is drained ...")
        logging.getLogger("onlinenmf.consumer").setLevel(logging.WARNING)
        status = loop.run()
        if status != 0:  # the loop logged why (broker lost, offsets not in the log, ...)
            raise DemoFailed(f"the consumer stopped with exit status {status}; see the line above")
        outputs = _read_topic(broker.bootstrap, TOPICS.output, expect=table.n_samples)
        models = _read_topic(broker.bootstrap, TOPICS.model, expect=None)
    # the broker is stopped here; everything below works from what was collected

    with open(out / "communities.jsonl", "w") as fh:
        for r in outputs:
            fh.write(r.value.decode() + "\n")
    with open(out / "model_versions.jsonl", "w") as fh:
        for r in models:
            fh.write(r.value.decode() + "\n")

    model, tracker = app.model, app.tracker
    comps = model.components(top=4)
    names = {c: f"C{c}" for c in comps}
    print(f"\n{len(comps)} communities after {model.samples_learned} samples "
          f"(model version {model.model_version}), top taxa by share:")
    for c, feats in comps.items():
        taxa = ", ".join(f"{table.taxon_name(f, unique=False)} {w:.0%}" for f, w in feats)
        print(f"  C{c:<3} {taxa}")
    print("\ntrajectories (dominant community by day of life, with its share):")
    for subject in SUBJECTS:
        if subject in tracker:
            print(f"  {subject}: {_trajectory_line(tracker, subject, names)}")
    growth = tracker.growth_table()
    elapsed_stream = (loop.last_record_time or 0) - (loop.first_record_time or 0)
    summary = {
        "samples_produced": table.n_samples,
        "output_records": len(outputs),
        "model_versions": len(models),
        "samples_learned": int(model.samples_learned),
        "checkpoints": loop.checkpoints_written,
        "dead_letters": sum(loop.dead_letter_counts.values()),
        "subjects": len(tracker),
        "growth_rows": len(growth),
        "stream_seconds": round(elapsed_stream, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if report:
        from consumers.report import write_report

        write_report(tracker, out / "report.html", labels={
            f: table.taxon_name(f) for f in model.features}, title="ECAM through Kafka")
    print(f"\n{len(outputs)} community records, {len(models)} model versions, "
          f"{loop.checkpoints_written} checkpoints; {summary['dead_letters']} dead letters")
    print(f"outputs in {out.resolve()}/: communities.jsonl, model_versions.jsonl, summary.json, "
          f"checkpoints/ (onlinenmf inspect --checkpoint-dir {out}/checkpoints --json)"
          + (", report.html" if report else ""))
    print(f"demo done in {time.monotonic() - started:.0f} s; broker stopped")
    return summary


def _text_messages(data: Path, every: int, limit: int | None) -> list[tuple[bytes, bytes]]:
    """Every ``every``-th document of the chunks' table, as ``onlinenmf produce text`` sends
    them (its producer: time order, ISO dates)."""
    import itertools

    from consumers.text.producer import text_messages

    messages = text_messages(argparse.Namespace(table=data, limit=None))
    return list(itertools.islice(messages, 0, None if limit is None else limit * every, every))


def run_text_demo(out: Path, data: Path = Path(STATE_OF_THE_UNION), components: int = 15,
                  every: int = 4, limit: int | None = None, report: bool = True
                  ) -> dict[str, Any]:
    """Stream State of the Union chunks through the embedded broker into the text consumer's
    application; return what it measured (used by the test). A missing ``data`` is a
    FileNotFoundError."""
    from consumers.broker import EMBEDDED_GROUP_SETTINGS, EmbeddedBroker
    from consumers.loop import ConsumerLoop, LoopConfig
    from consumers.metrics import ConsumerMetrics
    from consumers.text import TOPICS, TextApp

    started = time.monotonic()
    if not Path(data).exists():
        raise FileNotFoundError(f"{data}: no State of the Union chunks there; pass --data")
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    for old in ckpt_dir.glob("*.ckpt"):  # a rerun starts a fresh model, like the broker
        old.unlink()
    messages = _text_messages(Path(data), every, limit)
    print(f"State of the Union: {len(messages)} paragraph chunks (every {every}th)")
    with EmbeddedBroker(log_path=out / "broker.log") as broker:
        print(f"broker (Tansu, in memory) on {broker.bootstrap}")
        _replay(broker.bootstrap, TOPICS, messages, total=len(messages), unit="doc")

        app = TextApp(model_params={"n_components": components, "seed": 0},
                      output_topic=TOPICS.output, model_topic=TOPICS.model)
        loop = ConsumerLoop(app, LoopConfig(
            bootstrap_servers=broker.bootstrap, topics=[TOPICS.input],
            group_id="onlinenmf-demo-text", checkpoint_dir=ckpt_dir, worker_id="demo",
            checkpoint_every=1000, exit_when_idle=2.0,
            consumer_config=dict(EMBEDDED_GROUP_SETTINGS),
        ), ConsumerMetrics())
        print("consuming until the stream is drained ...")
        logging.getLogger("onlinenmf.consumer").setLevel(logging.WARNING)
        status = loop.run()
        if status != 0:
            raise DemoFailed(f"the consumer stopped with exit status {status}; see the line above")
        outputs = _read_topic(broker.bootstrap, TOPICS.output, expect=len(messages))
        versions = _read_topic(broker.bootstrap, TOPICS.model, expect=None)

    with open(out / "mixes.jsonl", "w") as fh:
        fh.writelines(r.value.decode() + "\n" for r in outputs)
    with open(out / "topics.jsonl", "w") as fh:
        fh.writelines(r.value.decode() + "\n" for r in versions)
    model = app.model
    topics = model.topics(8)
    print(f"\n{len(topics)} topics after {model.docs_learned} documents "
          f"(model version {model.nmf.model_version}), top words:")
    for topic, words in topics.items():
        print(f"  T{topic:<3} {', '.join(map(str, words))}")
    summary = {
        "documents_produced": len(messages), "documents_learned": int(model.docs_learned),
        "output_records": len(outputs), "topic_versions": len(versions),
        "checkpoints": loop.checkpoints_written,
        "dead_letters": sum(loop.dead_letter_counts.values()),
        "topic_events": len(app.topic_events),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if report:
        from consumers.report import write_text_report

        write_text_report(app, out / "report.html", dates=True,
                          title="State of the Union through Kafka")
    print(f"\n{len(outputs)} mix records, {len(versions)} topic versions, "
          f"{loop.checkpoints_written} checkpoints; {summary['dead_letters']} dead letters")
    print(f"outputs in {out.resolve()}/: mixes.jsonl, topics.jsonl, summary.json, checkpoints/ "
          f"(onlinenmf report --checkpoint {out}/checkpoints --dates)"
          + (", report.html" if report else ""))
    print(f"demo done in {time.monotonic() - started:.0f} s; broker stopped")
    return summary


def run(args: argparse.Namespace) -> int:
    """Run the Kafka demo on the bundled ECAM cohort, or on the State of the Union (text)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # shutdown chatter of the clients
    components = args.components or DEFAULT_COMPONENTS[args.kind]
    try:
        if args.kind == "text":
            summary = run_text_demo(args.out or Path("demo-output-text"), args.data,
                                    components, args.every, args.limit,
                                    report=not args.no_report)
            return 0 if summary["documents_learned"] == summary["documents_produced"] else 1
        summary = run_demo(args.out or Path("demo-output"), components,
                           report=not args.no_report)
    except FileNotFoundError as err:
        print(f"onlinenmf demo: {err}", file=sys.stderr)
        return 2
    except DemoFailed as err:
        print(f"onlinenmf demo: {err}", file=sys.stderr)
        return 1
    return 0 if summary["samples_learned"] == summary["samples_produced"] else 1


def _replay(bootstrap: str, topics: Topics, messages, total: int, unit: str) -> None:
    """Create the demo's topics with one partition each and send ``(key, value)`` pairs to its
    input, with a progress bar. One partition: records reach the model in one order, so every
    run of a demo learns the same model (with several, the interleaving follows the polls), and
    the outputs are read back in the order they were learned (the broker's default would be
    several partitions on Tansu, 3, when the consumer creates them at start)."""
    from kafka import KafkaProducer
    from tqdm import tqdm

    ensure_topics(bootstrap, dict.fromkeys([topics.input, topics.output, topics.model], 1),
                  broker_timeout=60)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for key, value in tqdm(messages, total=total, unit=unit, desc=f"replay -> {topics.input}"):
        producer.send(topics.input, key=key, value=value)
    producer.flush(30)
    producer.close()
