"""Command-line options shared by the Kafka commands, each with an environment variable.

Every option ``--some-flag`` can also be set as ``ONLINENMF_SOME_FLAG`` (the flag wins),
which is how the Docker image is configured. ``-X key=value`` passes any kafka-python
client setting through (``session_timeout_ms=2000``, ``security_protocol=SASL_SSL``,
``sasl_plain_username=...``); ``ONLINENMF_KAFKA_CONFIG`` holds the same as
comma-separated ``key=value`` pairs. Security settings (``security_protocol``,
``sasl_*``, ``ssl_*``) apply to the consumer and to the producers alike.

>>> parse_kafka_settings(["session_timeout_ms=2000", "ssl_check_hostname=false",
...                       "security_protocol=SASL_SSL"])
{'session_timeout_ms': 2000, 'ssl_check_hostname': False, 'security_protocol': 'SASL_SSL'}
>>> env_name("--bootstrap-servers")
'ONLINENMF_BOOTSTRAP_SERVERS'
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the tables are passed in: consumers/ modules import without the engine
    from onlinenmf.parameters import Parameter, Table

__all__ = ["env_name", "add_option", "add_kafka_options", "parse_kafka_settings",
           "security_settings", "setup_logging", "positive_int", "positive_float", "byte_size",
           "add_parameter_flags", "parameter_values", "parameter_flag", "parameter_dest"]

_SECURITY_PREFIXES = ("security_protocol", "sasl_", "ssl_")


def env_name(flag: str) -> str:
    """The environment variable that provides the default of ``flag``."""
    return "ONLINENMF_" + flag.lstrip("-").upper().replace("-", "_")


def add_option(parser: argparse.ArgumentParser, flag: str, *, type: Any = str,
               default: Any = None, help: str = "", **kwargs: Any) -> None:
    """``parser.add_argument`` whose default comes from the flag's environment variable."""
    env = env_name(flag)
    raw = os.environ.get(env)
    if raw is not None and raw != "":
        default = raw  # a str default: argparse converts (and checks) it as if typed
    help_text = f"{help} [env {env}]" if help else f"[env {env}]"
    if default is not None and "%(default)" not in help_text:
        help_text += " (default: %(default)s)"
    parser.add_argument(flag, type=type, default=default, help=help_text, **kwargs)


def signature_defaults(cls: Any) -> dict[str, Any]:
    """A class's constructor defaults by parameter name, for a class without a table in
    :mod:`onlinenmf.parameters` (the models and the tracker have one: see
    :func:`add_parameter_flags`)."""
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()}


def add_flag(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    """A boolean ``--flag``, also switched on by its environment variable = 1/true/yes."""
    env = env_name(flag)
    on = os.environ.get(env, "").strip().lower() in ("1", "true", "yes", "on")
    parser.add_argument(flag, action="store_true", default=on, help=f"{help} [env {env}]")


def _coerce(value: str) -> Any:
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_kafka_settings(pairs: Iterable[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> kafka-python keyword arguments (numbers and booleans typed)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace(".", "_")  # accept Java-style names: session.timeout.ms
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"-X expects key=value, got {pair!r}")
        out[key] = _coerce(value)
    return out


def security_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The subset of client settings that every client (consumer, producers) needs."""
    return {k: v for k, v in settings.items() if k.startswith(_SECURITY_PREFIXES)}


def add_kafka_options(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap-servers`` and ``-X key=value``."""
    add_option(parser, "--bootstrap-servers", default="localhost:9092",
               help="Kafka bootstrap address(es), host:port[,host:port]")
    env_pairs = [p for p in os.environ.get("ONLINENMF_KAFKA_CONFIG", "").split(",") if p]
    parser.add_argument(
        "-X", dest="kafka_config", action="append", default=list(env_pairs),
        metavar="KEY=VALUE",
        help="any kafka-python client setting, repeatable (e.g. -X session_timeout_ms=2000,"
             " -X security_protocol=SASL_SSL) [env ONLINENMF_KAFKA_CONFIG, comma-separated]")


def setup_logging(level: str) -> None:
    """Log to stderr; kafka-python's own chatter only from WARNING up."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1.

    >>> positive_int("12")
    12
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0.

    >>> positive_float("2.5")
    2.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


_BYTE_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?")


def byte_size(text: str) -> int:
    """argparse type: a size in bytes, optionally with a unit K, M, G or T (powers of 1024;
    ``KiB``, ``MB`` and the like are read the same).

    >>> byte_size("64M"), byte_size("1.5KiB"), byte_size("4096")
    (67108864, 1536, 4096)
    """
    match = _BYTE_SIZE.fullmatch(text.strip().upper())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: write bytes, or a number with K, M, G or T (e.g. 64M)")
    number, unit = match.groups()
    value = int(float(number) * 1024 ** " KMGT".index(unit or " "))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text!r}")
    return value


# ----------------------------------------------------------------------------- parameter flags
#: Flags spelled otherwise than their parameter, by (class, parameter): older spellings, kept so
#: that command lines, ``ONLINENMF_*`` variables and config keys keep working. RecoNMF's
#: forgetting and refresh period are the item side's, and not OnlineNMF's (another default).
FLAG_SPELLINGS = {
    ("OnlineNMF", "n_components"): "--components",
    ("RecoNMF", "n_components"): "--components",
    ("RecoNMF", "forget_factor"): "--item-forget-factor",
    ("RecoNMF", "refresh_every"): "--item-refresh-every",
    ("Tracker", "window"): "--growth-window",
    ("Tracker", "ttl"): "--subject-ttl",
}
#: What a flag's text is read with where the table's type is not enough: sizes with units.
FLAG_READERS: dict[str, Callable[[str], Any]] = {"max_history_bytes": byte_size}


def parameter_flag(owner: str, name: str) -> str:
    """The ``onlinenmf consume`` flag of parameter ``name`` of class ``owner``.

    >>> parameter_flag("OnlineNMF", "l1_h"), parameter_flag("Tracker", "ttl")
    ('--l1-h', '--subject-ttl')
    """
    return FLAG_SPELLINGS.get((owner, name), "--" + name.replace("_", "-"))


def parameter_dest(owner: str, name: str) -> str:
    """Where argparse puts that flag's value (the flag's name, as ``args.<dest>``)."""
    return parameter_flag(owner, name)[2:].replace("-", "_")


def _read(parameter: Parameter, text: str) -> Any:
    """A flag's text as the parameter's type ('none' is None where None is allowed)."""
    if parameter.none is not None and text.strip().lower() in ("none", ""):
        return None
    if parameter.name in FLAG_READERS:
        return FLAG_READERS[parameter.name](text)
    if parameter.type is int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if parameter.type is tuple:
        try:
            low, high = (float(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected LOW,HIGH such as 0,10") from None
        return (low, high)
    if parameter.type is float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    return text


def _reader(shared: list[Parameter]) -> Callable[[str], Any]:
    """argparse type of a flag: read its text, then check it as every class that takes it."""

    def read(text: str) -> Any:
        value = _read(shared[0], text)
        for parameter in shared:
            try:
                parameter.check(value)
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err)) from None
        return value

    read.__name__ = {int: "int", float: "float", tuple: "range"}.get(shared[0].type, "text")
    return read


def _bool_default(flag: str) -> Any:
    raw = os.environ.get(env_name(flag), "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return argparse.SUPPRESS


def _shown(parameter: Parameter) -> str:
    return parameter.none if parameter.default is None else repr(parameter.default)


def _help(shared: list[Parameter], owners: list[str], flag: str) -> str:
    first = shared[0]
    defaults = {_shown(p) for p in shared}
    if len(defaults) == 1:
        default = defaults.pop()
    else:
        default = ", ".join(f"{_shown(p)} for {owner}" for p, owner in zip(shared, owners))
    kind = "" if first.type is bool else f"; {first.describe()}"
    text = f"{first.doc}{kind} (default: {default}) [env {env_name(flag)}]"
    return text.replace("%", "%%")


def add_parameter_flags(parser: argparse._ActionsContainer, tables: Sequence[Table]) -> None:
    """A flag for every parameter of ``tables``, generated from its entry: the type and check
    (a bad value is a one-line usage error), the default and the help (the doc line).

    A flag several kinds' classes share (``--components``, ``--max-iter``) is one option: its
    help lists each class's default, and when they differ it is left out of the namespace
    unless given, so that :func:`parameter_values` gives each class its own default. Its
    ``ONLINENMF_*`` variable sets it as the flag would; a ``bool`` parameter is a pair
    ``--name`` / ``--no-name``.
    """
    existing = parser._option_string_actions  # argparse's own table of the parser's flags
    for table in tables:
        for name, parameter in table.items():
            flag = parameter_flag(table.owner, name)
            action = existing.get(flag)
            if action is None:
                _add_parameter_flag(parser, table.owner, parameter, flag)
            else:
                _share_flag(action, table.owner, parameter, flag)


def _add_parameter_flag(parser: argparse._ActionsContainer, owner: str, parameter: Parameter,
                        flag: str) -> None:
    shared = [parameter]
    if parameter.type is bool:
        action = parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                     default=_bool_default(flag),
                                     help=_help(shared, [owner], flag))
    else:
        raw = os.environ.get(env_name(flag))
        default = raw if raw else parameter.default  # a str default: read as if typed
        action = parser.add_argument(flag, type=_reader(shared), default=default,
                                     help=_help(shared, [owner], flag),
                                     metavar=parameter.name.upper())
    action.parameters = shared  # type: ignore[attr-defined]
    action.owners = [owner]  # type: ignore[attr-defined]


def _share_flag(action: argparse.Action, owner: str, parameter: Parameter, flag: str) -> None:
    """A second class takes an existing flag: one type, its check too, both defaults."""
    shared, owners = action.parameters, action.owners  # type: ignore[attr-defined]
    if parameter.type is not shared[0].type:
        raise TypeError(f"{flag}: {owner}.{parameter.name} and {owners[0]}.{shared[0].name} "
                        "share a flag but not a type")
    shared.append(parameter)
    owners.append(owner)
    if not os.environ.get(env_name(flag)) and any(p.default != shared[0].default
                                                  for p in shared):
        action.default = argparse.SUPPRESS  # each class's own default (parameter_values)
    if parameter.type is not bool:
        action.type = _reader(shared)
    action.help = _help(shared, owners, flag)


def parameter_values(args: argparse.Namespace, table: Table) -> dict[str, Any]:
    """The parameters of ``table``'s class that the parsed flags ask for: each flag's value,
    or the class's default where a shared flag was not given."""
    values = table.defaults()
    for name in table:
        dest = parameter_dest(table.owner, name)
        if hasattr(args, dest):
            values[name] = getattr(args, dest)
    return values
