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
from collections.abc import Iterable
from typing import Any

__all__ = ["env_name", "add_option", "add_kafka_options", "parse_kafka_settings",
           "security_settings", "setup_logging", "positive_int", "positive_float", "byte_size"]

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
    """A class's constructor defaults by parameter name: the one source of a flag's default,
    so a consumer given no flag builds the same model as the class called with no argument."""
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
