"""A Kafka broker as a child process on a loopback port: what the embedded Tansu broker
(:mod:`consumers.broker`) and the local Apache Kafka broker (:mod:`consumers.apache_kafka`)
share: start on a free port, stop, kill, pause and resume, restart on the same address, and
die with the process that started it.

>>> 1024 <= free_port() <= 65535
True
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """A broker could not be started, or died."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago.

    >>> 1024 <= free_port() <= 65535
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # A SIGKILLed test run must not leave brokers behind: ask Linux to SIGTERM the
    # broker when the process that started it dies. Best effort on other systems.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def freeze(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> bool:
    """SIGSTOP the child process ``proc`` and return once every one of its threads has
    stopped: True, or False if it exited instead. TimeoutError after ``timeout`` seconds.

    kill() only queues the signal: the process stops when its main thread is next scheduled
    and stops the others, which go on working until then. Measured with Tansu on a loaded
    machine: a raw ApiVersions request sent right after kill() was answered 10 times in 30,
    and a clean-clone CI saw list_topics answered by a "paused" broker.
    """
    proc.send_signal(signal.SIGSTOP)  # (not sent if it had exited: then reaped by the poll)
    if proc.returncode is not None or not hasattr(os, "waitid"):  # waitid: not on macOS
        return proc.returncode is None
    # waitid reports the stop once the whole process has stopped; WNOWAIT leaves that report
    # (and an exit) to be read again, so that Popen still reaps the process.
    deadline = time.monotonic() + timeout
    flags = os.WSTOPPED | os.WEXITED | os.WNOWAIT | os.WNOHANG
    while (info := os.waitid(os.P_PID, proc.pid, flags)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {proc.pid} did not stop within {timeout}s of SIGSTOP")
        time.sleep(0.001)
    return info.si_code == os.CLD_STOPPED


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class BrokerProcess:
    """A Kafka broker subprocess on a loopback port: what the Tansu and the Apache Kafka
    brokers share (start, stop, kill, pause, resume, restart on the same address).

    Subclasses define :meth:`_launch`. A port picked here stays the broker's port after
    :meth:`stop` or :meth:`kill`, so that :meth:`start` brings it back where its clients
    look for it; :attr:`persistent` says whether topics and offsets survive that.
    """

    #: Shown in error messages.
    name = "broker"
    #: Topics and committed offsets survive a stop (or kill) and a start.
    persistent = False
    #: Seconds a SIGTERM gets before SIGKILL.
    stop_timeout = 10.0

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port: int | None = port
        self._log_path = Path(log_path) if log_path is not None else None
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` bootstrap address for clients."""
        if self.port is None:
            raise BrokerError(f"the {self.name} is not started")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the broker, or None when not running."""
        return self._proc.pid if self._proc is not None else None

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        """Start the broker process listening on ``port`` (not waiting for it)."""
        raise NotImplementedError

    def _popen(self, cmd: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """``cmd`` with its output appended to the log file, dying with this process."""
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL
        try:
            return subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                **kwargs,  # type: ignore[arg-type]
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()

    def start(self) -> BrokerProcess:
        """Start the broker and wait until it accepts connections."""
        if self._proc is not None and self._proc.poll() is None:
            raise BrokerError(f"the {self.name} is already running")
        # A port picked by free_port() can be taken before the broker binds it: retry a
        # few times with a fresh port unless the port is fixed (asked for, or ours before).
        attempts = 1 if self.port is not None else 5
        last_error = ""
        for _ in range(attempts):
            port = self.port or free_port(self.host)
            if _port_open(self.host, port):
                last_error = f"port {port} on {self.host} is already in use"
                continue
            proc = self._launch(port)
            deadline = time.monotonic() + self._startup_timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    last_error = (f"it exited with status {proc.returncode} on port {port}"
                                  + self._log_hint())
                    break
                if _port_open(self.host, port):
                    self._proc, self.port = proc, port
                    return self
                time.sleep(0.05)
            else:
                proc.kill()
                proc.wait()
                last_error = (f"it did not open port {port} within {self._startup_timeout}s"
                              + self._log_hint())
        raise BrokerError(f"could not start the {self.name}: {last_error}")

    def _log_hint(self) -> str:
        return f" (its output: {self._log_path})" if self._log_path else ""

    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def pause(self, timeout: float = 10.0) -> None:
        """Freeze the broker (SIGSTOP): clients see an outage, no data is lost. Returns once
        the broker has stopped (every one of its threads), at most ``timeout`` seconds."""
        if not self.running():
            raise BrokerError(f"the {self.name} is not running")
        assert self._proc is not None
        if not freeze(self._proc, timeout):
            raise BrokerError(f"the {self.name} died while being paused (status "
                              f"{self._proc.poll()}){self._log_hint()}")

    def resume(self) -> None:
        """Unfreeze a paused broker (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        if not self.running():
            raise BrokerError(f"the {self.name} is not running")
        assert self._proc is not None
        self._proc.send_signal(sig)

    def stop(self, timeout: float | None = None) -> int | None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout`` seconds, by default
        :attr:`stop_timeout`); return its exit status."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused broker cannot act on SIGTERM
            proc.terminate()
            try:
                proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> int | None:
        """Kill the broker at once (SIGKILL, as a crash would); return its exit status."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return proc.returncode

    def restart(self) -> BrokerProcess:
        """Stop the broker (if running) and start it again on the same port."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the broker and release what it holds (subclasses: their storage)."""
        self.stop()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
