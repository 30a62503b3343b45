"""Run a single-node Apache Kafka broker (KRaft) on loopback, from jars fetched with Maven.

``onlinenmf broker --apache`` and the Kafka tests run the real broker that production
users run (``docker/`` runs the same version in a container), without Docker and without a
release tarball: ``apache-kafka/pom.xml`` (next to this module) pins Apache Kafka, and Maven
copies its jars, once, into a cache directory (``make kafka``, or the first start, which
says so on stderr). The broker needs Java 17 or newer on ``PATH``.

Files in ``apache-kafka/``:

- ``pom.xml``: the Kafka version (the one fact; ``docker/`` uses the same image tag);
- ``server.properties``: the single-node settings shared with ``docker/docker-compose.yml``
  (replication factor 1 for the internal topics, no initial rebalance delay, the record size
  limit); node id, roles, addresses and storage are added here (with
  :data:`LOCAL_SETTINGS`) and by the compose file (its environment);
- ``log4j2.properties``: the broker's logging (to its log file).

A broker's storage directory is formatted on its first start and reused afterwards: stop
(SIGTERM) or kill (SIGKILL) it and :meth:`ApacheBroker.start` again, it comes back on the
same ports with its topics and committed offsets.

>>> from consumers.apache_kafka import kafka_version
>>> kafka_version()
'4.4.0'
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from consumers.broker_process import BrokerError, BrokerProcess, free_port

__all__ = [
    "ApacheBroker",
    "FILES",
    "LOCAL_SETTINGS",
    "MIN_JAVA",
    "POM",
    "SHARED_SETTINGS",
    "fetch_jars",
    "java_problem",
    "kafka_version",
    "lib_dir",
    "read_properties",
    "unavailable",
]

#: The broker's files: the pinned pom, the shared single-node settings, the logging.
FILES = Path(__file__).with_name("apache-kafka")
POM = FILES / "pom.xml"
SHARED_SETTINGS = FILES / "server.properties"
LOG4J = FILES / "log4j2.properties"

#: Kafka 4 brokers and tools need Java 17 (Kafka's upgrade notes for 4.0).
MIN_JAVA = 17
#: The broker's JVM options for a small shared machine. A small heap (Kafka's own script
#: takes 1 GiB). The quick (C1) compiler alone: with both compilers the optimising one (C2)
#: kept recompiling the request paths for minutes, 15-45 µs of CPU per record of the
#: consumer benchmark after 300,000 records (30-50 over the first 20,000), taken from the
#: two cores the consumers share; with C1 alone compiling fell to 2-4 µs per record after
#: 40,000 records and the request handlers' CPU per record was no higher (issue 15). A
#: broker on a host of its own (``docker/``) keeps the JVM's default, which pays off over a
#: long run. The default collector (G1) stays: its threads took 0.1-0.4 µs of CPU per record,
#: and neither -XX:+UseSerialGC nor -XX:+UseParallelGC -XX:ParallelGCThreads=1 cut the
#: broker's CPU per record or lifted two workers over one beyond the runs' spread (means of
#: alternated runs: SerialGC 1.71x against G1's 1.75x, 3 runs; ParallelGC 1.52x against
#: 1.49x, 4 runs on a loaded machine; issue 15).
HEAP = ("-Xms128m", "-Xmx512m", "-XX:TieredStopAtLevel=1")
#: The storage tool runs for a second or two: the quick compiler alone starts it faster.
TOOL_HEAP = ("-Xmx256m", "-XX:TieredStopAtLevel=1")

#: What the local broker sets on top of :data:`SHARED_SETTINGS` (addresses aside); the
#: compose file does without these, and tests/test_apache_kafka.py keeps the two lists
#: apart from the shared file. The thread pools keep Kafka's defaults: 1 network thread,
#: 2 request handlers and 2 background threads (instead of 3, 8 and 10) left the broker's
#: CPU per record (its request threads: 6-7 µs) and two workers over one where they were
#: (1.71x against 1.75x, 3 alternated runs, issue 15).
LOCAL_SETTINGS: dict[str, str] = {
    # As on Tansu: the consumers' output and dead-letter topics come into being when first
    # written (docker/ creates its topics up front and turns this off).
    "auto.create.topics.enable": "true",
    # The group offsets topic is created at the first group join: 1 partition, not 50,
    # costs milliseconds instead of seconds on two cores.
    "offsets.topic.num.partitions": "1",
    # The log cleaner allocates this buffer on the heap: 16 MiB, not 128, in a 512 MiB heap.
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
}

#: How long a start may take (JVM start, storage check, controller election) and how long
#: a controlled shutdown may take before SIGKILL, on a busy two-core machine.
STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0

#: Where the jars go: ``$ONLINENMF_CACHE_DIR`` or ``~/.cache/onlinenmf`` (XDG).
CACHE_ENV = "ONLINENMF_CACHE_DIR"

Progress = Callable[[str], None]


def read_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``key=value`` pairs of a Java properties file (comments and blanks skipped).

    Enough for the files written here: no line continuations, no escapes.
    """
    out: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not a key=value line: {raw!r}")
        out[key.strip()] = value.strip()
    return out


@lru_cache(maxsize=1)
def kafka_version() -> str:
    """The pinned Apache Kafka version (``kafka.version`` in :data:`POM`)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:  # pragma: no cover - the pom ships with the package
        raise BrokerError(f"{POM} has no <kafka.version>")
    return match.group(1).strip()


def cache_root() -> Path:
    """The directory under which the jars of each pinned version are kept."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "onlinenmf"


def lib_dir() -> Path:
    """Where the jars of the pinned pom live (fetched or not): a change of the pom gets a
    directory of its own."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return cache_root() / f"kafka-{kafka_version()}-{digest}" / "lib"


def _fetched(lib: Path) -> bool:
    return (lib / ".complete").is_file()


def fetch_jars(progress: Progress | None = None) -> Path:
    """Copy the broker's jars from Maven into :func:`lib_dir` unless already there; return it.

    Maven resolves them through its own local repository (``~/.m2``); the copy is made in a
    temporary directory and renamed, so an interrupted fetch is never taken for a complete one.
    """
    lib = lib_dir()
    if _fetched(lib):
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"Apache Kafka {kafka_version()}'s jars are not in {lib.parent} and Maven (mvn) is "
            "not on PATH to fetch them: install Maven (Debian: apt-get install maven), then "
            "run `make kafka`")
    if progress is not None:
        progress(f"fetching Apache Kafka {kafka_version()} with Maven into {lib} (once)")
    lib.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="lib.", dir=lib.parent))
    try:
        done = subprocess.run(
            [mvn, "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
             f"-Donlinenmf.kafka.lib={staging}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            lines = [ln for ln in (done.stdout + done.stderr).splitlines() if "ERROR" in ln]
            detail = lines[0].replace("[ERROR]", "").strip() if lines else "no error message"
            raise BrokerError(f"Maven could not fetch Apache Kafka {kafka_version()} "
                              f"(exit {done.returncode}): {detail}")
        if not any(staging.glob(f"kafka_2.13-{kafka_version()}.jar")):
            raise BrokerError(f"Maven ran but kafka_2.13-{kafka_version()}.jar is not in "
                              f"{staging}")
        (staging / ".complete").write_text(kafka_version() + "\n")
        staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
        shutil.rmtree(lib, ignore_errors=True)  # an incomplete earlier copy
        staging.rename(lib)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if progress is not None:
        progress(f"Apache Kafka {kafka_version()}: {sum(1 for _ in lib.glob('*.jar'))} jars "
                 "fetched")
    return lib


def _java_major(text: str) -> int | None:
    # `java -version` prints e.g. 'openjdk version "17.0.15" 2025-04-15' or '"1.8.0_392"'.
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


@lru_cache(maxsize=1)
def java_problem() -> str | None:
    """Why this machine cannot run the broker (no Java, or one older than 17), or None."""
    java = shutil.which("java")
    if java is None:
        return (f"Apache Kafka needs Java {MIN_JAVA} or newer and `java` is not on PATH "
                "(Debian: apt-get install openjdk-17-jre-headless)")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"`{java} -version` failed: {err}"
    major = _java_major(out.stderr + out.stdout)
    if major is None:
        return f"cannot tell the Java version of {java} from `java -version`"
    if major < MIN_JAVA:
        return f"Apache Kafka needs Java {MIN_JAVA} or newer; {java} is Java {major}"
    return None


def unavailable() -> str | None:
    """Why this machine cannot run the broker: no Java 17+, or no Maven to fetch the jars
    that are not fetched yet; None when it can."""
    problem = java_problem()
    if problem is None and shutil.which("mvn") is None and not _fetched(lib_dir()):
        problem = (f"Apache Kafka {kafka_version()}'s jars are not fetched and Maven (mvn) is "
                   "not on PATH to fetch them (Debian: apt-get install maven)")
    return problem


def _random_cluster_id() -> str:
    """What ``kafka-storage.sh random-uuid`` prints, without starting a JVM for it.

    Kafka's Uuid.toString: the 16 bytes in URL-safe base64, unpadded; like Uuid.randomUuid,
    never one that starts with '-' (a command line would take it for an option).

    >>> ids = {_random_cluster_id() for _ in range(200)}
    >>> len(ids), {len(i) for i in ids}, any(i.startswith("-") for i in ids)
    (200, {22}, False)
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


class ApacheBroker(BrokerProcess):
    """A single-node Apache Kafka (KRaft, broker and controller in one JVM) on loopback.

    Parameters
    ----------
    port : int, optional
        Client port; a free one is picked when omitted (and kept across restarts).
    host : str
        Listen and advertised address (loopback by default: nothing is exposed).
    data_dir : path, optional
        The broker's storage: formatted on the first start, reused by later ones (also by a
        later process). Default: a temporary directory, removed by :meth:`close`.
    log_path : path, optional
        Where the broker's and its storage tool's output goes (default: ``broker.log`` in
        ``data_dir``).
    settings : mapping, optional
        Broker settings on top of the shared and local ones (the tests lower
        ``group.min.session.timeout.ms`` with it).
    startup_timeout : float
        Seconds to wait for the client port to accept connections.
    progress : callable, optional
        Called with a line when the jars are being fetched (the first start only).

    The client port opens only once the broker has registered with its controller and is
    ready to serve (Kafka defers its acceptors to that point), which is what :meth:`start`
    waits for.
    """

    name = "Apache Kafka broker"
    persistent = True
    stop_timeout = STOP_TIMEOUT

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        data_dir: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        settings: Mapping[str, object] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(port=port, host=host, log_path=log_path,
                         startup_timeout=startup_timeout)
        # A temporary directory is made by the first start, not here: a start refused for
        # want of Java leaves nothing behind.
        self._own_dir = data_dir is None
        self._data_dir = None if data_dir is None else Path(data_dir).resolve()
        self.settings = {k: str(v) for k, v in (settings or {}).items()}
        self._progress = progress

    @property
    def data_dir(self) -> Path:
        """The broker's storage directory (a temporary one is made by the first start)."""
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="onlinenmf-kafka-"))
            self._own_dir = True
        return self._data_dir

    @property
    def log_dir(self) -> Path:
        """The broker's ``log.dirs`` (topic data and cluster metadata)."""
        return self.data_dir / "kraft"

    @property
    def config_path(self) -> Path:
        """The properties file the broker runs with (written at each start)."""
        return self.data_dir / "server.properties"

    def config(self, port: int, controller_port: int) -> dict[str, str]:
        """Every setting the broker runs with: shared, local, address-bound, caller's."""
        host = self.host
        return {
            **read_properties(SHARED_SETTINGS),
            **LOCAL_SETTINGS,
            "node.id": "1",
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners":
                f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"{host}:{controller_port}",
            "log.dirs": str(self.log_dir),
            **self.settings,
        }

    def _controller_port(self, port: int) -> int:
        # A formatted directory records its controller's address (a standalone dynamic
        # quorum): a restart must listen there again.
        if (self.log_dir / "meta.properties").is_file() and self.config_path.is_file():
            listeners = read_properties(self.config_path).get("listeners", "")
            match = re.search(r"CONTROLLER://[^,]*:(\d+)", listeners)
            if match:
                return int(match.group(1))
        while True:
            controller = free_port(self.host)
            if controller != port:
                return controller

    def _java(self, *args: str, heap: Sequence[str]) -> list[str]:
        java = shutil.which("java")
        assert java is not None  # java_problem() was checked
        lib = lib_dir()
        return [java, *heap, "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG4J}", "-cp", f"{lib}{os.sep}*", *args]

    def _format(self) -> None:
        """Format the storage directory, once (a second format would be refused)."""
        if (self.log_dir / "meta.properties").is_file():
            return
        proc = self._popen(self._java(
            "kafka.tools.StorageTool", "format", "--standalone",
            f"--cluster-id={_random_cluster_id()}", f"--config={self.config_path}",
            heap=TOOL_HEAP))
        try:
            status = proc.wait(self._startup_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BrokerError(f"formatting {self.log_dir} took over {self._startup_timeout}s"
                              + self._log_hint()) from None
        if status != 0:
            raise BrokerError(f"formatting {self.log_dir} failed with status {status}"
                              + self._log_hint())

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._log_path is None:
            self._log_path = self.data_dir / "broker.log"
        config = self.config(port, self._controller_port(port))
        self.config_path.write_text(
            "# Written by consumers/apache_kafka.py at each start; edits are overwritten.\n"
            + "".join(f"{k}={v}\n" for k, v in config.items()))
        self._format()
        return self._popen(self._java("kafka.Kafka", str(self.config_path), heap=HEAP))

    def wipe(self) -> None:
        """Forget everything the broker stored (it must be stopped): the next start formats
        a new, empty cluster on the same client port, as a broker that lost its disk."""
        if self.running():
            raise BrokerError(f"stop the {self.name} before wiping its storage")
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def start(self) -> ApacheBroker:
        """Check Java, fetch the jars if needed, format the storage once, start the broker
        and wait until it serves clients."""
        problem = java_problem()
        if problem is not None:
            raise BrokerError(problem)
        fetch_jars(self._progress)
        super().start()
        return self

    def close(self) -> None:
        """Stop the broker and remove its storage if it is a temporary directory."""
        self.stop()
        if self._own_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None



def main(argv: Sequence[str] | None = None) -> int:
    """``python -m consumers.apache_kafka fetch``: what ``make kafka`` runs."""
    parser = argparse.ArgumentParser(
        prog="python -m consumers.apache_kafka",
        description="Fetch the pinned Apache Kafka broker's jars with Maven (once).")
    parser.add_argument("action", choices=["fetch"])
    parser.add_argument("--optional", action="store_true",
                        help="without Java 17+ (or without Maven, the jars not fetched yet) "
                        "say so and succeed: the Apache Kafka test cases then skip")
    args = parser.parse_args(argv)
    problem = unavailable()
    if problem is not None:
        if args.optional:
            print(f"WARNING: {problem}: the Apache Kafka test cases will be skipped",
                  file=sys.stderr)
            return 0
        print(f"onlinenmf kafka: {problem}", file=sys.stderr)
        return 1
    try:
        lib = fetch_jars(lambda line: print(line, file=sys.stderr, flush=True))
    except BrokerError as err:
        print(f"onlinenmf kafka: {err}", file=sys.stderr)
        return 1
    print(lib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
