"""The command line as a user reads it: --help written for a terminal, one-line errors.

Every subcommand's --help is free of doctest prompts and reST markup; `produce` refuses a
table or metadata it cannot use in one line with exit status 2, before any broker is
contacted; `python -m benchmarks NAME --option` hands the option to that benchmark.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from consumers.cli import SUBCOMMANDS, main, plain_help
from tests.kafka_broker import ROOT, cli_env, run_cli

REST = re.compile(r">>>|:(mod|class|func|meth|attr|data|ref|doc):`|``")


@pytest.mark.parametrize("command", [None, *SUBCOMMANDS])
def test_help_reads_as_command_line_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"] if command else ["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: onlinenmf")
    found = REST.search(text)
    assert found is None, f"{command} --help shows {found.group(0)!r}: {text[:2000]}"


@pytest.mark.parametrize(("command", "said"), [
    ("broker", "bootstrap address"), ("produce", "collection_date"), ("report", "taxonomy.tsv")])
def test_help_of_the_user_facing_commands_has_examples(command, said, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "examples:\n  onlinenmf " + command in text and said in text


def test_plain_help_removes_doctests_and_markup():
    doc = '''Run the broker.

    Reads :mod:`consumers.messages` and :class:`~onlinenmf.Tracker`; ``--port`` picks::

        onlinenmf broker --port 9092

    >>> from consumers.broker import EmbeddedBroker
    >>> with EmbeddedBroker() as b:
    ...     b.running()
    True

    Examples
    --------
    >>> 1 + 1
    2
    '''
    assert plain_help(doc) == ("Run the broker.\n\nReads consumers.messages and Tracker; --port "
                               "picks:\n\n    onlinenmf broker --port 9092\n")


# ---------------------------------------------------------------------- produce mistakes
OTU_ROWS = "#OTU ID\tS1\tS2\nasv1\t5\t0\nasv2\t1\t7\n"
META = "sample_id\tsubject\tday\nS1\tA\t1\nS2\tA\t2\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    written = {
        "table.tsv": OTU_ROWS, "meta.tsv": META,
        "words.tsv": "#OTU ID\tS1\tS2\nasv1\t5\tmany\n",
        "no-time.tsv": "sample_id\tsubject\tweek\nS1\tA\t1\n",
        "no-subject.tsv": "sample_id\tcage\tday\nS1\tA\t1\n",
        "other-ids.tsv": "sample_id\tsubject\tday\nX1\tA\t1\n",
        "bad-date.tsv": "sample_id\tsubject\tdate\nS1\tA\tlast monday\n",
    }
    for name, text in written.items():
        (folder / name).write_text(text)
    (folder / "table.qza").write_bytes(b"PK\x03\x04 a QIIME 2 artifact")
    return folder


# (expected in the message, arguments after `produce microbiome`)
MISTAKES = {
    "no such file": ["--table", "{d}/missing.tsv", "--metadata", "{d}/meta.tsv"],
    "qiime tools export": ["--table", "{d}/table.qza", "--metadata", "{d}/meta.tsv"],
    "holds 'many', not a count": ["--table", "{d}/words.tsv", "--metadata", "{d}/meta.tsv"],
    "name it with --time-column": ["--table", "{d}/table.tsv", "--metadata", "{d}/no-time.tsv"],
    "name it with --subject-column": ["--table", "{d}/table.tsv", "--metadata",
                                      "{d}/no-subject.tsv"],
    "no column 'visit' (--time-column)": ["--table", "{d}/table.tsv", "--metadata",
                                          "{d}/meta.tsv", "--time-column", "visit"],
    "--sample-column": ["--table", "{d}/table.tsv", "--metadata", "{d}/other-ids.tsv"],
    "'last monday' (sample 'S1'), neither a number nor a date": [
        "--table", "{d}/table.tsv", "--metadata", "{d}/bad-date.tsv"],
    "--table needs --metadata": ["--table", "{d}/table.tsv"],
    "unknown --dataset 'ecma'": ["--dataset", "ecma"],
}


@pytest.mark.parametrize("expected", list(MISTAKES))
def test_produce_mistake_is_one_line_and_exit_2(files, expected):
    args = [a.format(d=files) for a in MISTAKES[expected]]
    # port 9 (discard): nothing listens; the input is refused before a broker is needed
    done = run_cli("produce", "microbiome", "--bootstrap-servers", "127.0.0.1:9",
                   "--no-progress", *args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("onlinenmf produce: "), done.stderr
    assert expected in lines[0]


# ---------------------------------------------------------------------- benchmarks
def test_benchmark_options_reach_the_benchmark(tmp_path):
    ratings = tmp_path / "u.data"
    ratings.write_text("".join(f"{u}\t{i}\t{1 + (u * i) % 5}\t{880000000 + 60 * (u * 13 + i)}\n"
                               for u in range(1, 16) for i in range(1, 11)))
    command = [sys.executable, "-m", "benchmarks", "reco", "--parts", "movielens",
               "--movielens"]
    env = {**cli_env(), "ONLINENMF_BENCH_OUTPUT": str(tmp_path)}  # not the committed results
    done = subprocess.run([*command, str(ratings)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "over 150 events" in (tmp_path / "reco_movielens.md").read_text()
    assert "MovieLens 100K" in done.stdout and "prequential over 150 events" in done.stdout
    assert "MovieTweetings" not in done.stdout  # --parts was read too
    done = subprocess.run([*command, str(tmp_path / "nowhere")], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "MovieLens 100K ratings not found" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
