"""The one launcher of a redis-server process: a private server on a loopback port, never a shared one.

`chatlens bench` measures against one (its producer figures empty their Redis); the tests' harness
(tests/redis_harness.py) and the scripts build on it for servers that are killed, restarted or given a
password or TLS.

A server is one `RedisServer`: a port (free, or given), a data directory (a temporary one unless given),
its options (password, TLS, AOF), and the process. `stop` is what an operator's restart sends (SIGTERM:
redis-server runs SHUTDOWN and flushes its AOF), `kill9` a crash; `start` again brings the same server
back on the same port and data directory. A replica is a server with `args=("--replicaof", "127.0.0.1",
str(primary.port))`; a sentinel (`redis-server FILE.conf --sentinel`) is a subclass whose `_command`
writes its config file into the data directory (chatlens/bench/redis_sentinel.py, with `SentinelGroup`:
a primary, its replicas and three sentinels): the process handling here stays the same.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis

from chatlens.core.errors import ServiceUnavailable

HOST = "127.0.0.1"
# A port picked by free_port can be taken by another process before redis-server binds it (other test
# sessions start servers too): a server whose port was ours to choose tries another this many times.
PORT_ATTEMPTS = 5


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ServerTls:
    """A TLS-only server: `port` speaks TLS and there is no plain port."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    auth_clients: bool = True  # clients must present a certificate signed by `ca_file`


class RedisServer:
    """A redis-server of our own on `HOST`; see the module docstring.

    Use it as a context manager (started on entry; stopped and its temporary directory removed on exit),
    or call `start` and `close` yourself.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        tls: ServerTls | None = None,
        data_dir: Path | None = None,
        aof: bool = False,
        appendfsync: str = "everysec",
        args: Sequence[str] = (),
        start_timeout_s: float = 10.0,
    ) -> None:
        self.password, self.tls, self.aof, self.appendfsync = password, tls, aof, appendfsync
        self.args = tuple(args)
        self.start_timeout_s = start_timeout_s
        self._port = port
        self._data_dir = data_dir
        self._owned_dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- what a client needs ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server has no port until it is started")
        return self._port

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise RuntimeError("the server has no data directory until it is started")
        return self._data_dir

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def url_for(self, db: int) -> str:
        """redis:// (rediss:// with TLS) URL of database `db`, with the password if there is one."""
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}{HOST}:{self.port}/{db}"

    @property
    def url(self) -> str:
        return self.url_for(0)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- the process --------------------------------------------------------------------------------

    def start(self) -> RedisServer:
        """Start the process and wait until it answers; the same port and data directory every time."""
        if self.running:
            raise RuntimeError(f"redis-server is already running on port {self.port}")
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis-server not found; install it (apt-get install redis-server)")
        if self._data_dir is None:
            self._owned_dir = tempfile.TemporaryDirectory(prefix="chatlens-redis-")
            self._data_dir = Path(self._owned_dir.name)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        # Only a first start picks its port; a restart comes back where its clients expect it.
        may_move = self._port is None
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if self._port is None:
                self._port = free_port()
            with self.log_file.open("ab") as log:
                logged_before = log.tell()
                self._process = subprocess.Popen(
                    [binary, *self._command()], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            if self._wait_ready():
                return self
            said = self._log_since(logged_before)
            if may_move and "Address already in use" in said and attempt < PORT_ATTEMPTS:
                self._port = None
                continue
            self._end(signal.SIGKILL)
            raise ServiceUnavailable(
                f"redis-server did not start on port {self._port} within {self.start_timeout_s:g} s "
                f"({said or 'no output'}; log: {self.log_file})"
            )
        raise AssertionError("unreachable")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, as an operator's restart or docker-compose sends it: SHUTDOWN, the AOF flushed."""
        self._end(signal.SIGTERM, timeout_s)

    def kill9(self) -> None:
        """SIGKILL: a crash. With AOF and appendfsync everysec, up to the last second of writes is lost."""
        self._end(signal.SIGKILL)

    def restart(self, *, kill9: bool = False) -> RedisServer:
        """Stop (or kill -9) and start again on the same port, from the same data directory."""
        self.kill9() if kill9 else self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its data directory if it was a temporary one."""
        self.stop()
        if self._owned_dir is not None:
            self._owned_dir.cleanup()
            self._owned_dir = None
            self._data_dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        """redis-server's arguments after the binary (a subclass may put a config file first)."""
        command = ["--bind", HOST, "--dir", str(self.data_dir), "--save", ""]
        command += (
            ["--appendonly", "yes", "--appendfsync", self.appendfsync] if self.aof else ["--appendonly", "no"]
        )
        if self.tls is not None:
            command += ["--port", "0", "--tls-port", str(self.port)]
            command += ["--tls-cert-file", str(self.tls.cert_file), "--tls-key-file", str(self.tls.key_file)]
            command += ["--tls-ca-cert-file", str(self.tls.ca_file)]
            command += ["--tls-auth-clients", "yes" if self.tls.auth_clients else "no"]
        else:
            command += ["--port", str(self.port)]
        if self.password is not None:
            command += ["--requirepass", self.password]
        return [*command, *self.args]

    def _wait_ready(self) -> bool:
        """True once the server answers (a TLS port: once it listens, as a client needs its own
        certificate to say more); False if the process exits or the time runs out."""
        deadline = time.monotonic() + self.start_timeout_s
        client = (
            None if self.tls else redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        )
        try:
            while time.monotonic() < deadline:
                if not self.running:
                    return False
                try:
                    if client is None:
                        with socket.create_connection((HOST, self.port), timeout=1):
                            return True
                    elif client.ping():
                        return True
                except (OSError, redis.RedisError):  # not listening yet, or still loading its AOF
                    pass
                time.sleep(0.02)
            return False
        finally:
            if client is not None:
                client.close()

    def _end(self, sig: signal.Signals, timeout_s: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _log_since(self, offset: int) -> str:
        """The last lines this start wrote to the log, on one line: redis-server says there why it quit."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                lines = log.read().decode("utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " / ".join(line.strip() for line in lines[-2:])
