"""Real services for the tests, each started on a free loopback port in a temp dir.

redis-server, Dovecot (IMAP) and PostgreSQL run from Debian's packages (scripts/test installs
them); the SMTP server is aiosmtpd (a test dependency) in its own process, see `SmtpSink`. When one is missing the tests that need it skip locally and FAIL under CI=true.
Dovecot's login process refuses root, so it runs as the package's dovenull/dovecot users.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(binary: str | None, what: str) -> str:
    """The binary's path, or skip (locally) / fail (CI) the test that needs it."""
    if binary and os.path.exists(binary):
        return binary
    message = f"{what} is not installed (scripts/test installs it from Debian's packages)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError  # unreachable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_servers(hosts: tuple[str, ...], port: int, handler: type[BaseHTTPRequestHandler],
                 tls: ssl.SSLContext | None = None) -> Iterator[list[ThreadingHTTPServer]]:
    """A threaded HTTP server (HTTPS with `tls`) on each of `hosts` at `port`, stopped on exit."""
    servers = []
    try:
        for host in hosts:
            server = ThreadingHTTPServer((host, port), handler)
            server.daemon_threads = True
            if tls is not None:
                server.socket = tls.wrap_socket(server.socket, server_side=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Redis:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self) -> None:
        """Stop and start again on the same port (no persistence: a cold restart)."""
        self.stop()
        self.process = _spawn_redis(self.port)


def _spawn_redis(port: int) -> subprocess.Popen:
    binary = require(shutil.which("redis-server"), "redis-server")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process


@contextmanager
def redis_server() -> Iterator[Redis]:
    port = free_port()
    server = Redis(port=port, process=_spawn_redis(port))
    try:
        yield server
    finally:
        server.stop()


DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%u
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
service imap-login {{
{listeners}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {base}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={base}/mail/%u
}}
"""
IMAP_LISTENER = """\
  inet_listener imap {{
    port = {port}
  }}"""
IMAPS_LISTENER = """\
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}"""
TLS_SETTINGS = """\
ssl = required
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem"""


@dataclass
class Dovecot:
    base: Path
    port: int
    user: str = "inbox"
    password: str = "secret"
    tls: bool = False  # IMAPS only, on `port`, with the self-signed certificate at `cert`

    @property
    def url(self) -> str:
        scheme = "imaps" if self.tls else "imap"
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}/INBOX"

    @property
    def cert(self) -> Path:
        return self.base / "cert.pem"

    def add_users(self, users: list[tuple[str, str]]) -> None:
        """(user, password) logins, appended to the passwd-file (Dovecot re-reads it within a second)."""
        with open(self.base / "users", "a") as handle:
            handle.writelines(f"{user}:{{PLAIN}}{password}\n" for user, password in users)

    def stop(self) -> None:
        pid_file = self.base / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                return
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)


def _self_signed_cert(base: Path) -> None:
    """A throwaway certificate (and key) for 127.0.0.1 in base/cert.pem and base/key.pem."""
    openssl = require(shutil.which("openssl"), "openssl")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(base / "key.pem"), "-out", str(base / "cert.pem"),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)


@contextmanager
def dovecot_server(user: str = "inbox", password: str = "secret", *, tls: bool = False,
                   extra_conf: str = "") -> Iterator[Dovecot]:
    """A Dovecot with one user (`add_users` adds more).
    `tls`: IMAPS only (its plain IMAP port demands TLS too), `.port` is the IMAPS one and `.cert`
    the certificate to trust. `extra_conf`: lines appended to the config, e.g. an imap_capability
    that leaves out IDLE and MOVE."""
    binary = require(shutil.which("dovecot") or "/usr/sbin/dovecot", "dovecot-imapd")
    base = Path(tempfile.mkdtemp(prefix="ps-dovecot-tls-" if tls else "ps-dovecot-"))
    os.chmod(base, 0o755)
    port = free_port()
    server = Dovecot(base=base, port=port, user=user, password=password, tls=tls)
    if tls:
        _self_signed_cert(base)
        ssl = TLS_SETTINGS.format(base=base)
        listeners = IMAPS_LISTENER.format(port=port) + "\n" + IMAP_LISTENER.format(port=free_port())
    else:
        ssl, listeners = "ssl = no", IMAP_LISTENER.format(port=port)
    (base / "mail").mkdir()
    server.add_users([(user, password)])
    (base / "dovecot.conf").write_text(DOVECOT_CONF.format(base=base, ssl=ssl, listeners=listeners) + extra_conf)
    shutil.chown(base / "mail", "dovecot", "dovecot")
    subprocess.run([binary, "-c", str(base / "dovecot.conf")], check=True)
    try:
        wait_for_port(port)
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Postgres:
    base: Path
    port: int
    bin_dir: str

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        subprocess.run(["su", "postgres", "-c", f"{self.bin_dir}/createdb -h 127.0.0.1 -p {self.port} "
                        f"-U postgres {name}"], check=True, capture_output=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = require(found[-1] if found else None, "postgresql")
    bin_dir = os.path.dirname(initdb)
    base = Path(tempfile.mkdtemp(prefix="ps-postgres-"))
    os.chmod(base, 0o755)
    shutil.chown(base, "postgres")
    port = free_port()
    as_postgres = ["su", "postgres", "-c"]
    subprocess.run([*as_postgres, f"{initdb} -D {base}/data -A trust -U postgres"], check=True,
                   capture_output=True)
    subprocess.run([*as_postgres, f"{bin_dir}/pg_ctl -D {base}/data -o '-p {port} -k {base} "
                    f"-c listen_addresses=127.0.0.1 -c fsync=off' -l {base}/log -w start"],
                   check=True, capture_output=True)
    try:
        yield Postgres(base=base, port=port, bin_dir=bin_dir)
    finally:
        subprocess.run([*as_postgres, f"{bin_dir}/pg_ctl -D {base}/data -m immediate stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd, tests/services/smtp_sink.py) in its own process, relaying
    nothing: it keeps what it accepts in `folder`. Chosen over Debian's postfix: postfix is not on
    this machine, its package installs and starts a system MTA on port 25 (system services are
    off limits here), and scripting a 4xx-then-2xx per recipient would take access maps and reloads;
    this one speaks the same SMTP over TCP, records the envelope exactly, and can be scripted."""

    port: int
    folder: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def clear(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()

    def script(self, answers: dict[str, list[str]]) -> None:
        """The next RCPT TO answers per recipient, e.g. {"a@x": ["451 4.7.1 Try again later"]}."""
        (self.folder / "script.json").write_text(json.dumps({k.lower(): v for k, v in answers.items()}))

    def messages(self) -> list[dict]:
        """What the server accepted, in order: {"mail_from", "rcpt_tos", "data" (bytes)}."""
        found = []
        for path in sorted(self.folder.glob("[0-9]*.json")):
            record = json.loads(path.read_text())
            record["data"] = base64.b64decode(record["data"])
            found.append(record)
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        require(None, "aiosmtpd (pip install -e '.[test]')")
    folder = Path(tempfile.mkdtemp(prefix="ps-smtp-"))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.services.smtp_sink", str(port), str(folder)],
                               cwd=Path(__file__).resolve().parents[2])
    server = SmtpSink(port=port, folder=folder, process=process)
    try:
        wait_for_port(port)
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
