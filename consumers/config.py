"""Config files (TOML) of the commands, and the checks of Kafka client settings.

One loader, :func:`read_config`, reads every command's ``--config`` file with the standard
library's ``tomllib`` and refuses an unknown section or key in one line that names the file,
the section, the key and the keys allowed there. ``onlinenmf fit`` reads ``[model]`` and
``[fit]`` with it (``consumers/fit.py``); ``onlinenmf consume`` reads:

``[model]``
    the model's parameters by their own names (``OnlineNMF``'s for ``consume microbiome``,
    ``RecoNMF``'s for ``consume reco``), each one that has a flag;
``[tracker]``
    the subject tracker's (``Tracker``; microbiome only);
``[supervised]``
    microbiome only: ``label`` (``--label``, e.g. ``"meta.delivery"``) and the classifier's
    parameters by their own names (``--supervised-*``; ``consumers/microbiome/supervised.py``);
``[kafka]``
    kafka-python client settings, as ``-X`` takes them (``bootstrap_servers`` and
    ``group_id`` set ``--bootstrap-servers`` and ``--group``);
``[topics]``
    ``input``, ``output``, ``model`` (reco: the recommendations) and ``stats``;
``[consumer]``
    every other flag of ``onlinenmf consume`` by its name (``checkpoint_dir`` for
    ``--checkpoint-dir``, ``exit_when_idle``, ...).

Each key sets the same option as the flag it names, checked and converted as the flag's
value would be: the file's values become the parser's defaults (:func:`apply_to_parser`),
so a flag given on the command line wins over the file, and an ``ONLINENMF_*`` environment
variable (the Docker image's way) wins too.

>>> from argparse import ArgumentParser
>>> sections = {"consumer": {"exit_when_idle": ArgumentParser().add_argument(
...     "--exit-when-idle", type=float)}}
>>> convert(sections, "consumer", "exit_when_idle", 5, "c.toml")
5.0
>>> convert(sections, "consumer", "exit_when_idle", "soon", "c.toml")
Traceback (most recent call last):
...
consumers.config.ConfigError: c.toml [consumer] exit_when_idle = 'soon': not a valid float
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "read_config", "consume_sections", "apply_to_parser",
           "check_kafka_settings", "configure_consume", "embedded_broker_settings",
           "CONSUMER_DEFAULTS", "OUTPUT_PRODUCER_DEFAULTS", "producer_only_settings"]

#: ``[topics]`` key -> flag destination
TOPIC_KEYS = {"input": "topic", "output": "output_topic", "model": "model_topic",
              "stats": "stats_topic"}
#: ``[kafka]`` keys that are flags of their own (the rest are ``-X`` settings)
KAFKA_FLAGS = {"bootstrap_servers": "bootstrap_servers", "group_id": "group"}
#: destinations no file sets: the positional kind, the file itself, help, the -X list
NOT_IN_FILE = frozenset({"help", "kind", "config", "kafka_config"})


class ConfigError(ValueError):
    """A config file or setting that cannot be used: one line for the user."""


def read_config(path: Path, allowed: Mapping[str, Collection[str]]
                ) -> dict[str, dict[str, Any]]:
    """The sections of a TOML file, each a dict; an unknown section or key is a ConfigError.

    Parameters
    ----------
    path : Path
        The file.
    allowed : mapping
        Section name -> the keys it takes.
    """
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"config {path}: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config {path}: not valid TOML ({err})") from None
    names = ", ".join(f"[{s}]" for s in allowed)
    for section, values in doc.items():
        if section not in allowed:
            raise ConfigError(f"{path}: unknown section [{section}]"
                              f"{_did_you_mean(section, allowed)}; the sections are {names}")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {section} = ... must be a section [{section}] of "
                              "key = value lines")
        for key in values:
            if key not in allowed[section]:
                raise ConfigError(
                    f"{path}: unknown key {key!r} in [{section}]"
                    f"{_did_you_mean(key, allowed[section])}; it takes "
                    f"{', '.join(sorted(allowed[section])) or 'nothing here'}")
    return {section: dict(values) for section, values in doc.items()}


def _did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- consume
def _kind_tables(kind: str) -> dict[str, Any]:
    """Section -> the parameter table (:mod:`onlinenmf.parameters`) whose flags it sets."""
    from onlinenmf.parameters import ENGINE, RECO, TRACKER

    return {"microbiome": {"model": ENGINE, "tracker": TRACKER},
            "reco": {"model": RECO}}.get(kind, {})


def _kind_sections(kind: str) -> dict[str, dict[str, str]]:
    """Sections a kind has beyond its tables: section -> key -> flag destination."""
    from consumers.microbiome.flags import supervised_section

    return {"microbiome": {"supervised": supervised_section()}}.get(kind, {})


def _table_actions(table: Any, actions: Mapping[str, argparse.Action]
                   ) -> dict[str, argparse.Action]:
    """Parameter -> the action of its flag (``consumers.options.parameter_dest``: older
    spellings such as ``--components`` included), for the parameters that have one."""
    from consumers.options import parameter_dest

    dests = {name: parameter_dest(table.owner, name) for name in table}
    return {name: actions[dest] for name, dest in dests.items() if dest in actions}


def _model_without_table(kind: str, actions: Mapping[str, argparse.Action]
                         ) -> dict[str, argparse.Action]:
    """[model] of a kind without a parameter table: rank, seed and the kind's own flags."""
    from consumers.kinds import STREAM_KINDS

    keys = {"n_components": "components", "seed": "seed"}
    keys.update({flag.lstrip("-").replace("-", "_"): flag.lstrip("-").replace("-", "_")
                 for flag in STREAM_KINDS[kind].exclusive_flags})
    return {key: actions[dest] for key, dest in keys.items() if dest in actions}


def consume_sections(parser: argparse.ArgumentParser, kind: str
                     ) -> dict[str, dict[str, argparse.Action]]:
    """Section -> key -> the argparse action it sets, for ``onlinenmf consume KIND``.

    ``[kafka]`` lists only its flag keys here; its other keys are client settings
    (:func:`kafka_keys`).
    """
    from consumers.kinds import STREAM_KINDS

    # argparse has no public list of a parser's actions
    actions = {a.dest: a for a in parser._actions if a.dest not in NOT_IN_FILE}
    tables = _kind_tables(kind)
    sections = {section: _table_actions(table, actions) for section, table in tables.items()}
    if "model" not in sections:
        sections["model"] = _model_without_table(kind, actions)
    for section, keys in _kind_sections(kind).items():
        sections[section] = {key: actions[dest] for key, dest in keys.items() if dest in actions}
    sections["kafka"] = {key: actions[dest] for key, dest in KAFKA_FLAGS.items()
                         if dest in actions}
    sections["topics"] = {key: actions[dest] for key, dest in TOPIC_KEYS.items()
                          if dest in actions}
    # any kind's model and tracker flags belong to [model]/[tracker], never to [consumer]
    claimed = {a.dest for other in STREAM_KINDS for table in _kind_tables(other).values()
               for a in _table_actions(table, actions).values()}
    claimed |= {a.dest for s in sections.values() for a in s.values()}
    claimed |= _other_kinds_flags(parser, kind)
    sections["consumer"] = {dest: a for dest, a in actions.items() if dest not in claimed}
    return sections


def _other_kinds_flags(parser: argparse.ArgumentParser, kind: str) -> set[str]:
    """Destinations of the flags in another kind's argument group (titled by its name, e.g.
    "reco (onlinenmf consume reco)"): not keys of this kind's file."""
    from consumers.kinds import STREAM_KINDS

    others = set(STREAM_KINDS) - {kind}
    return {a.dest for group in parser._action_groups
            if (group.title or "").split(" ", 1)[0] in others
            for a in group._group_actions}


def kafka_keys() -> frozenset[str]:
    """Every setting kafka-python's consumer or producer takes."""
    from kafka import KafkaConsumer, KafkaProducer

    return frozenset(KafkaConsumer.DEFAULT_CONFIG) | frozenset(KafkaProducer.DEFAULT_CONFIG)


def convert(sections: Mapping[str, Mapping[str, argparse.Action]], section: str, key: str,
            value: Any, path: Path | str) -> Any:
    """A file's value as its flag would have it: the flag's type applied (and its check),
    its choices enforced; a switch takes true or false."""
    action = sections[section][key]
    where = f"{path} [{section}] {key} = {value!r}"
    if action.nargs == 0:  # a switch (store_true)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: write true or false")
        return value
    if isinstance(value, list) and action.nargs in ("+", "*"):
        return [_typed(action, item, where) for item in value]
    if isinstance(value, list) and value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        value = ",".join(map(str, value))  # a range [0, 10], read as the flag reads "0,10"
    return _typed(action, value, where)


def _typed(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise ConfigError(f"{where}: expects one {_type_name(action)}")
    kind: Callable[[str], Any] = action.type or str  # type: ignore[assignment]
    try:
        out = kind(str(value))
    except argparse.ArgumentTypeError as err:
        raise ConfigError(f"{where}: {err}") from None
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: not a valid {_type_name(action)}") from None
    if action.choices is not None and out not in action.choices:
        raise ConfigError(f"{where}: one of {', '.join(map(str, action.choices))}")
    return out


def _type_name(action: argparse.Action) -> str:
    kind = action.type
    return {int: "int", float: "float", str: "text", None: "text"}.get(
        kind, getattr(kind, "__name__", "value"))


def _env_given(action: argparse.Action) -> bool:
    """True when the flag's ``ONLINENMF_*`` variable is set: it wins over the file."""
    from consumers.options import env_name

    return any(os.environ.get(env_name(flag)) for flag in action.option_strings
               if flag.startswith("--"))


def apply_to_parser(parser: argparse.ArgumentParser, path: Path,
                    sections: Mapping[str, Mapping[str, argparse.Action]],
                    extra: Mapping[str, Collection[str]] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """Read ``path`` and make its values the defaults of the flags they name.

    ``extra`` adds keys a section takes beyond its flags; their values are returned
    (section -> key -> value), not applied.
    """
    extra = extra or {}
    allowed = {s: {*keys, *extra.get(s, ())} for s, keys in sections.items()}
    doc = read_config(path, allowed)
    defaults: dict[str, Any] = {}
    rest: dict[str, dict[str, Any]] = {}
    for section, values in doc.items():
        for key, value in values.items():
            if key not in sections.get(section, {}):
                rest.setdefault(section, {})[key] = value
                continue
            converted = convert(sections, section, key, value, path)
            action = sections[section][key]
            if not _env_given(action):
                defaults[action.dest] = converted
    parser.set_defaults(**defaults)
    return rest


def configure_consume(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Apply ``args.config`` to the ``onlinenmf consume`` parser (before it parses again).

    The ``[kafka]`` client settings go before those of ``ONLINENMF_KAFKA_CONFIG`` and
    ``-X``, which therefore win.
    """
    sections = consume_sections(parser, args.kind)
    rest = apply_to_parser(parser, args.config, sections,
                           extra={"kafka": kafka_keys() - set(KAFKA_FLAGS)})
    settings = rest.get("kafka", {})
    try:
        check_kafka_settings(settings)
    except ConfigError as err:
        raise ConfigError(f"{args.config} [kafka] {err}") from None
    env_pairs = parser.get_default("kafka_config") or []
    pairs = [f"{key}={_setting_text(value)}" for key, value in settings.items()]
    parser.set_defaults(kafka_config=[*pairs, *env_pairs])


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- Kafka settings
#: The consumer loop's input client settings where they differ from kafka-python's (``-X``
#: overrides each). A fetch the broker holds waits at most 100 ms for data (kafka-python:
#: 500): Tansu answered a fetch waiting when records arrived only when its wait ran out, so
#: records written to an idle stream reached a worker 120-280 ms later, and the two workers
#: of a group started up to 0.18 s apart (10-60 ms, and <= 0.03 s apart, at 100 ms; issue
#: 15). An idle worker then asks 10 times a second instead of 2, which costs the broker
#: nothing measurable; a busy one finds data at once either way.
CONSUMER_DEFAULTS: dict[str, Any] = {"fetch_max_wait_ms": 100}

#: The output producer's settings (``-X`` overrides each; ``max_request_size`` is
#: ``--max-message-bytes``). Acknowledged by every in-sync replica: an output is delivered
#: before a checkpoint covers its input. Outputs linger 100 ms to fill larger batches: a
#: broker's CPU goes mostly to each produce request, not to each record in it, so fewer,
#: bigger requests cost it less. Per output record, Tansu spent 4-4.5 µs of CPU at 5 ms,
#: 2-2.5 at 20 ms, 2-3 at 50 ms (9,000 records/s of 570 bytes), and a consumer with its
#: broker 12.5-15 µs at 5 ms against 6.5-9.5 at 20 ms; Apache Kafka's request threads
#: 31-35 µs per record at 20 ms against 17-21 at 100 ms (one tracked worker, 2,000 records/s
#: of 880 bytes; two workers 33-50 against 28-37), and the consumer's producer 5 µs
#: against 7 at 20 ms; both share the cores with the workers (issue 15). An output then
#: reaches its topic up to 0.1 s later; a checkpoint and a shutdown still send what waits
#: at once (``flush``), as does a dead letter through librdkafka. Not compressed (both
#: clients' default): compressing would cost the workers CPU.
OUTPUT_PRODUCER_DEFAULTS: dict[str, Any] = {"acks": "all", "linger_ms": 100,
                                            "batch_size": 256 * 1024}


def producer_only_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings only kafka-python's producer takes (``linger_ms``, ``acks``, ...): the
    output producer's, which the input consumer would refuse."""
    from kafka import KafkaConsumer, KafkaProducer

    only = frozenset(KafkaProducer.DEFAULT_CONFIG) - frozenset(KafkaConsumer.DEFAULT_CONFIG)
    return {key: value for key, value in settings.items() if key in only}


#: client settings a flag of the consumer sets (with what else it sets): not taken from -X
_SET_BY_FLAG = {"max_request_size": "--max-message-bytes (the one limit of the records read "
                                    "and written, the consumer's fetch sizes included)"}
#: (lower, higher, why): kafka-python refuses a client where lower >= higher
_ORDERED = (
    ("heartbeat_interval_ms", "session_timeout_ms",
     "a heartbeat must come well within the session timeout, a third of it is usual"),
    ("fetch_max_wait_ms", "request_timeout_ms",
     "a fetch may wait for data only within the request timeout"),
    ("request_timeout_ms", "connections_max_idle_ms",
     "an idle connection must outlive a request"),
)


def check_kafka_settings(settings: Mapping[str, Any],
                         base: Mapping[str, Any] | None = None) -> None:
    """Refuse client settings kafka-python would refuse (or crash on) later, in one line.

    Parameters
    ----------
    settings : mapping
        What the user gave (``-X``, ``[kafka]``): unknown names, wrong types and an
        order kafka-python requires (heartbeat below session timeout, ...) are refused.
    base : mapping, optional
        The settings the command sets itself, under the user's: the order is checked on
        both together, with kafka-python's defaults below them.

    >>> try:
    ...     check_kafka_settings({"session_timeout_ms": 2000})
    ... except ConfigError as err:
    ...     print(str(err).split(": ")[1])
    heartbeat_interval_ms must be below session_timeout_ms (a heartbeat must come well within \
the session timeout, a third of it is usual); set heartbeat_interval_ms too, e.g. -X \
heartbeat_interval_ms=666
    """
    from kafka import KafkaConsumer, KafkaProducer

    defaults = {**KafkaProducer.DEFAULT_CONFIG, **KafkaConsumer.DEFAULT_CONFIG}
    for key, value in settings.items():
        if key in _SET_BY_FLAG:
            raise ConfigError(f"Kafka client setting {key} is {_SET_BY_FLAG[key]} here; "
                              "give that flag instead")
        if key not in defaults:
            raise ConfigError(f"unknown Kafka client setting {key!r}"
                              f"{_did_you_mean(key, defaults)}; kafka-python's "
                              "KafkaConsumer and KafkaProducer list the settings")
        _check_type(key, value, defaults[key])
    merged = {**defaults, **(base or {}), **settings}
    for low, high, why in _ORDERED:
        if low not in settings and high not in settings:
            continue
        if not merged[low] < merged[high]:
            given, other = (high, low) if high in settings else (low, high)
            hint = (f"{low}={merged[high] // 3}" if other == low
                    else f"{high}={merged[low] * 3}")
            raise ConfigError(f"Kafka client setting {given}={merged[given]} with {other}="
                              f"{merged[other]}: {low} must be below {high} ({why}); set "
                              f"{other} too, e.g. -X {hint}")


def _check_type(key: str, value: Any, default: Any) -> None:
    """A number where kafka-python's default is a number, true/false where it is one."""
    if default is None or isinstance(default, (str, tuple, list, dict)) or callable(default):
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        expected = "true or false"
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a number" + (" of milliseconds" if key.endswith("_ms") else "")
    else:
        return
    if not ok:
        raise ConfigError(f"Kafka client setting {key}={value!r}: expected {expected}")


# --------------------------------------------------------------------------- fast start
#: the settings that time a group join: given by the user, they are left alone
_GROUP_TIMING = frozenset({"session_timeout_ms", "heartbeat_interval_ms"})
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def embedded_broker_settings(bootstrap_servers: str, settings: Mapping[str, Any]
                             ) -> dict[str, Any]:
    """Group settings for a fast start when the broker is the embedded one, else ``{}``.

    Asked only when every bootstrap address is on loopback (where ``onlinenmf broker``
    listens) and the user set no group timing: the broker's cluster id tells the embedded
    broker (:data:`consumers.broker.EMBEDDED_CLUSTER_ID`) from any other, which keeps
    kafka-python's defaults. No answer within 2 s: ``{}`` (the consumer then reports the
    missing broker as it always does).
    """
    if _GROUP_TIMING & settings.keys():
        return {}
    hosts = {address.strip().rsplit(":", 1)[0] for address in bootstrap_servers.split(",")}
    if not hosts <= _LOOPBACK:
        return {}
    from kafka import KafkaAdminClient

    from consumers.broker import EMBEDDED_CLUSTER_ID, EMBEDDED_GROUP_SETTINGS
    from consumers.options import security_settings

    quiet = logging.getLogger("kafka")  # a broker not up yet is the loop's to report
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, bootstrap_timeout_ms=2000,
                                 request_timeout_ms=2000, **security_settings(settings))
        try:
            cluster = admin.describe_cluster().get("cluster_id")
        finally:
            admin.close()
    except Exception:  # noqa: BLE001 - any failure: the standard settings, nothing worse
        return {}
    finally:
        quiet.setLevel(level)
    return dict(EMBEDDED_GROUP_SETTINGS) if cluster == EMBEDDED_CLUSTER_ID else {}
