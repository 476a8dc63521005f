"""The SSRF-safe image fetch, and the proxy left for the owner's own private pages.

Public pages, feeds and the API show only images WE store (purchaseshare/images.py: fetched once
by a worker with `fetch` below, re-encoded, served from /media). What still goes through /img/<token>
(like GitHub's camo: the token is the image's URL signed with SECRET_KEY, and the server fetches
the image itself) is the image of an item its owner has not shared yet, on the owner's own pages:
their browser never contacts the merchant's (or an email sender's) server either. Unsigned URLs
are refused: this is no open proxy.

The fetch: https only, no user info in the URL, no cookies or credentials sent; the host is
resolved ONCE and that very address is connected to (and checked: no private, loopback,
link-local or otherwise non-global address, so a URL or a redirect cannot reach the server's own
network); at most a few redirects, each checked the same way; bounded in time and size;
`image/*` only, and the bytes must really be a PNG, JPEG, GIF or WebP (never SVG, which can carry
script). Results are cached on disk under a size bound.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from itsdangerous import BadSignature, Signer

MAX_BYTES = 5 * 2**20
TIMEOUT_S = 5.0  # per connect/read
DEADLINE_S = 10.0  # for the whole fetch, redirects included
MAX_REDIRECTS = 3
CACHE_MAX_BYTES = 256 * 2**20
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"))


class ImageError(Exception):
    """This URL gives no image we will serve (the reason is for the log, not for the visitor)."""


def _signer(secret_key: str) -> Signer:
    return Signer(secret_key, salt="purchaseshare-image-proxy")


def image_path(secret_key: str, url: str) -> str:
    """/img/<token> for an image URL (deterministic, so browsers and the page cache can cache it)."""
    encoded = base64.urlsafe_b64encode(url.encode()).rstrip(b"=")
    return "/img/" + _signer(secret_key).sign(encoded).decode()


def url_from_token(secret_key: str, token: str) -> str | None:
    try:
        encoded = _signer(secret_key).unsign(token.encode())
        return base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4)).decode()
    except (BadSignature, ValueError):
        return None


def sniff(data: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Policy:
    """Where the fetcher may connect. `allow` exempts networks from the private-address block:
    for tests on loopback only (PURCHASESHARE_IMAGE_PROXY_ALLOW); `ca_file` trusts a test CA."""

    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    ca_file: str | None = None

    def permits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_global or any(ip in network for network in self.allow)


def policy_from(allow: str, ca_file: str | None) -> Policy:
    networks = tuple(ipaddress.ip_network(part.strip()) for part in allow.split(",") if part.strip())
    return Policy(allow=networks, ca_file=ca_file)


class _PinnedHTTP(http.client.HTTPConnection):
    """Plain HTTP to an address resolved beforehand (the stored-image worker only: see `fetch`)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an address resolved beforehand; the certificate is still checked for the host name."""

    def __init__(self, host: str, port: int, address: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _resolve(host: str, port: int, policy: Policy) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ImageError(f"cannot resolve {host}") from exc
    address = str(infos[0][4][0])
    if not policy.permits(address):
        raise ImageError(f"{host} resolves to a non-public address")
    return address


def fetch(url: str, policy: Policy, schemes: tuple[str, ...] = ("https",)) -> tuple[bytes, str]:
    """(bytes, content type) of the image at `url`, or ImageError. The proxy fetches https only;
    the stored-image worker (purchaseshare/images.py) also plain http, since it re-encodes what
    it gets and serves it from our origin (every hop is still pinned and checked the same way)."""
    deadline = time.monotonic() + DEADLINE_S
    context = ssl.create_default_context(cafile=policy.ca_file)
    for _hop in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
            raise ImageError(f"only plain {' or '.join(schemes)} URLs")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _resolve(parts.hostname, port, policy)
        connection: http.client.HTTPConnection = (
            _PinnedHTTPS(parts.hostname, port, address, context, TIMEOUT_S) if parts.scheme == "https"
            else _PinnedHTTP(parts.hostname, port, address, TIMEOUT_S))
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            # Nothing of the visitor's: no cookie, no referrer, no credentials.
            connection.request("GET", target, headers={"Accept": "image/png,image/jpeg,image/gif,image/webp",
                                                       "User-Agent": "PurchaseShare-image-proxy"})
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308) and response.getheader("location"):
                url = urljoin(url, response.getheader("location"))
                continue
            if response.status != 200:
                raise ImageError(f"status {response.status}")
            declared = (response.getheader("content-type") or "").split(";")[0].strip().lower()
            if not declared.startswith("image/"):
                raise ImageError(f"not an image: {declared!r}")
            length = response.getheader("content-length")
            if length and length.isdigit() and int(length) > MAX_BYTES:
                raise ImageError("too large")
            data = bytearray()
            while chunk := response.read(64 * 1024):
                data += chunk
                if len(data) > MAX_BYTES:
                    raise ImageError("too large")
                if time.monotonic() > deadline:
                    raise ImageError("too slow")
            kind = sniff(bytes(data))
            if kind is None:
                raise ImageError("the bytes are no PNG, JPEG, GIF or WebP")
            return bytes(data), kind
        except (OSError, http.client.HTTPException) as exc:
            raise ImageError(f"fetch failed: {exc}") from exc
        finally:
            connection.close()
    raise ImageError("too many redirects")


class DiskCache:
    """Fetched images by sha256 of their URL, evicting the least recently written past max_bytes."""

    def __init__(self, directory: Path, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def _path(self, url: str) -> Path:
        return self.directory / hashlib.sha256(url.encode()).hexdigest()

    def get(self, url: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(url).read_bytes()
        except OSError:
            return None
        kind = sniff(data)  # the type is the bytes' own, as when they were stored
        return (data, kind) if kind else None

    def put(self, url: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(url)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a file
        self._trim()

    def _trim(self) -> None:
        entries = []
        for entry in os.scandir(self.directory):
            try:
                stat = entry.stat()
            except OSError:
                continue
            entries.append((stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, size, _ in entries)
        for _mtime, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            try:
                os.unlink(path)
                total -= size
            except OSError:
                pass
