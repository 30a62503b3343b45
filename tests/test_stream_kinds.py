"""consumers/ by stream kind (issue 11, part 4): one registry, each kind the same shape, its
topic names defined once and honoured by both commands, flags of another kind refused."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from consumers.cli import build_parser, main
from consumers.consume import resolve_topics
from consumers.kinds import STREAM_KINDS

ROOT = Path(__file__).resolve().parents[1]
SHAPE = ("schema", "application", "producer", "flags")


@pytest.mark.parametrize("name", sorted(STREAM_KINDS))
def test_every_kind_has_the_same_shape(name):
    kind = STREAM_KINDS[name]
    for part in SHAPE:
        module = importlib.import_module(f"consumers.{name}.{part}")
        assert module.__doc__, f"consumers/{name}/{part}.py has no docstring"
    assert importlib.import_module(f"consumers.{name}.schema").TOPICS is kind.topics


@pytest.mark.parametrize("name", sorted(STREAM_KINDS))
def test_the_consumer_defaults_to_the_kinds_topics(name):
    kind = STREAM_KINDS[name]
    args = build_parser().parse_args(["consume", name])
    resolve_topics(args)
    app = kind.application(args)
    produced = {getattr(app, a) for a in ("output_topic", "model_topic",
                                           "recommendations_topic") if hasattr(app, a)}
    assert args.topic == kind.topics.input
    assert produced == {kind.topics.output, kind.topics.model}
    args = build_parser().parse_args(["consume", name, "--topic", "t", "--output-topic", ""])
    resolve_topics(args)
    assert (args.topic, args.output_topic, args.model_topic) == ("t", "", kind.topics.model)


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module's code (docstrings, read by people, left out)."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr)}
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docs]


def test_topic_names_are_spelled_once():
    """No module of consumers/ spells a kind's topic name but its schema."""
    names = {t for kind in STREAM_KINDS.values()
             for t in (kind.topics.input, kind.topics.output, kind.topics.model)}
    found = [f"{path.relative_to(ROOT)}:{line}: {text!r}"
             for path in sorted((ROOT / "consumers").rglob("*.py")) if path.name != "schema.py"
             for line, text in _code_strings(path) if text in names]
    assert not found, "topic names spelled outside their kind's schema:\n" + "\n".join(found)


@pytest.mark.parametrize("flag", ["--init-from=model.npz", "--share-dictionary"])
def test_a_flag_of_another_kind_is_refused_in_one_line(flag, capsys, tmp_path):
    status = main(["consume", "reco", "--bootstrap-servers", "127.0.0.1:1",
                   "--checkpoint-dir", str(tmp_path), flag])
    err = capsys.readouterr().err
    assert status == 2
    assert err == f"onlinenmf consume: {flag.split('=')[0]} is for the microbiome stream only\n"
