"""The ``onlinenmf`` command: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the module's docstring first line is its one-line summary. Its
``--help`` text is the module's ``HELP`` string when it has one (written for the command
line, with examples), else its docstring made plain by :func:`plain_help` (doctest examples
and reST markup removed). The command and its subcommands live in ``consumers``, with what they
drive: the numeric core (``onlinenmf``) never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys

# Before numpy is imported: one BLAS thread. The engine's matrices are small and OpenBLAS
# threads spin-wait on a busy machine (10x slower measured on a loaded 2-core VM).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

#: exit status of a bad command line or config file (argparse's own)
EXIT_USAGE = 2

SUBCOMMANDS: dict[str, str] = {
    "demo": "consumers.demo",
    "broker": "consumers.broker",
    "produce": "consumers.produce",
    "consume": "consumers.consume",
    "inspect": "consumers.inspect",
    "report": "consumers.report",
    "fit": "consumers.fit",
    "compile": "consumers.compile",
}


EXAMPLES = """\
examples:
  onlinenmf demo                                   # the whole pipeline on the ECAM cohort
  onlinenmf compile                                # once per install: no compiling at start
  onlinenmf broker --port 9092 &                   # an embedded broker for trying things
  onlinenmf produce microbiome --bootstrap-servers 127.0.0.1:9092 \\
      --table feature-table.tsv --metadata samples.tsv
  onlinenmf consume microbiome --bootstrap-servers 127.0.0.1:9092 \\
      --checkpoint-dir ckpt --exit-when-idle 10
  onlinenmf inspect --checkpoint-dir ckpt --json
  onlinenmf report --checkpoint ckpt --taxonomy taxonomy.tsv --out report.html

'onlinenmf COMMAND --help' explains each command.
"""

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_help(doc: str | None) -> str:
    """A docstring as command-line help: doctest examples dropped, reST markup removed.

    ``:mod:`a.b``` becomes ``a.b`` (``~a.b`` becomes ``b``), double backticks and the
    ``::`` of literal blocks go, and a heading left with nothing under it is dropped.
    """
    lines: list[str] = []
    in_doctest = False
    for line in inspect.cleandoc(doc or "").splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>"):
            in_doctest = True
        if in_doctest:
            in_doctest = bool(stripped)
            continue
        lines.append(line.rstrip())
    text = "\n".join(lines)
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).count("~")
                     else m.group(1), text)
    text = _LITERAL.sub(r"\1", text).replace("::\n", ":\n")
    text = re.sub(r"\n[A-Z][A-Za-z ]*\n-{3,}\n*(?=\n[A-Z][A-Za-z ]*\n-{3,}|\Z)", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser, whose usage error is one line: the command, what was wrong, where
    the options are listed. Why: argparse prints the whole usage first, 80 lines for
    ``consume``, and the line that says what was wrong scrolled away under it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (`{self.prog} --help` lists the "
                              "options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="onlinenmf",
        description="Streaming non-negative matrix factorization: run the demo, the embedded\n"
        "broker, replay a table into Kafka, consume it with the engine, inspect a checkpoint,\n"
        "write the HTML report.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:  # a subcommand not built yet in this checkout
            if err.name != module_name:
                raise
            continue
        summary = plain_help(module.__doc__ or name).splitlines()[0]
        description = getattr(module, "HELP", None) or plain_help(module.__doc__)
        command = sub.add_parser(name, help=summary, description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_run=module.run, _configure=getattr(module, "configure", None),
                             _parser=command)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line, with its ``--config`` file applied (a bad file raises
    ValueError)."""
    parser = build_parser()
    return configured(parser, argv, parser.parse_args(argv))


def configured(parser: argparse.ArgumentParser, argv: list[str] | None,
               args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with its ``--config`` file applied.

    A command whose module has ``configure(parser, args)`` takes ``--config FILE``: the
    file's values become the command's defaults and the command line is parsed again, so
    its flags win over the file (:mod:`consumers.config`).
    """
    if args._configure is None or getattr(args, "config", None) is None:
        return args
    args._configure(args._parser, args)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run ``onlinenmf ARGV``; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args = configured(parser, argv, args)
    except ValueError as err:  # ConfigError: a bad config file is the user's to fix
        print(f"onlinenmf {args.command}: {err}", file=sys.stderr)
        return EXIT_USAGE
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
