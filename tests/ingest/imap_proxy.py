"""A small TCP proxy in front of a real IMAP server, for fault injection in tests.

    with FaultProxy(upstream_port) as proxy:
        proxy.cut_after = 150_000   # every connection dies after this many bytes from the server
        proxy.drop_all()            # cut every open connection now (e.g. in the middle of IDLE)
        proxy.wait_for_client(b"IDLE")  # until a client sent this (on a connection still open)

Cutting closes both sockets, so the client sees EOF in the middle of whatever it was reading.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket
    from_server: int = 0
    from_client: bytearray = field(default_factory=bytearray)
    closed: bool = False


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.cut_after: int | None = None  # bytes from the server per connection; None: never
        self.connections = 0  # accepted so far
        self.cuts = 0  # connections we cut on purpose
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # close() cannot wake a blocked accept(): look at _running often
        self.port = self._listener.getsockname()[1]
        self._running = True
        self._thread = threading.Thread(target=self._accept, name="imap-proxy", daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, user: str, password: str, folder: str = "INBOX") -> str:
        return f"imap://{user}:{password}@127.0.0.1:{self.port}/{folder}"

    def close(self) -> None:
        self._running = False
        self._listener.close()
        self.drop_all(count=False)
        self._thread.join(5)

    def drop_all(self, count: bool = True) -> int:
        """Cut every open connection now; returns how many were open."""
        with self._lock:
            links = [link for link in self._links if not link.closed]
        for link in links:
            self._cut(link, count)
        return len(links)

    def open_links(self) -> int:
        with self._lock:
            return sum(1 for link in self._links if not link.closed)

    def wait_for_client(self, needle: bytes, timeout: float = 15.0) -> None:
        """Until an open connection's client has sent `needle` (e.g. b"IDLE\\r\\n")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if any(needle in link.from_client for link in self._links if not link.closed):
                    return
            time.sleep(0.02)
        raise TimeoutError(f"no client sent {needle!r} within {timeout}s")

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            link = _Link(client, server)
            with self._lock:
                self.connections += 1
                self._links.append(link)
            threading.Thread(target=self._pump_down, args=(link,), daemon=True).start()
            threading.Thread(target=self._pump_up, args=(link,), daemon=True).start()

    def _pump_down(self, link: _Link) -> None:
        """Server -> client, cutting after `cut_after` bytes."""
        while not link.closed:
            try:
                data = link.server.recv(65536)
            except OSError:
                break
            if not data:
                break
            limit = self.cut_after
            if limit is not None and link.from_server + len(data) >= limit:
                keep = max(0, limit - link.from_server)
                try:
                    link.client.sendall(data[:keep])
                except OSError:
                    pass
                link.from_server += keep
                self._cut(link, True)
                return
            link.from_server += len(data)
            try:
                link.client.sendall(data)
            except OSError:
                break
        self._cut(link, False)

    def _pump_up(self, link: _Link) -> None:
        """Client -> server, remembering what the client said."""
        while not link.closed:
            try:
                data = link.client.recv(65536)
            except OSError:
                break
            if not data:
                break
            with self._lock:
                link.from_client += data
                del link.from_client[:-65536]  # the recent past is all wait_for_client needs
            try:
                link.server.sendall(data)
            except OSError:
                break
        self._cut(link, False)

    def _cut(self, link: _Link, on_purpose: bool) -> None:
        with self._lock:
            if link.closed:
                return
            link.closed = True
            if on_purpose:
                self.cuts += 1
        for sock in (link.client, link.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
