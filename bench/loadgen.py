"""A small HTTP/1.1 keep-alive load generator (asyncio, raw sockets), for machines without wrk.

    python -m bench.loadgen URL [--connections 8] [--duration 10] [--warmup 1] [-H "Name: value"]

Each connection sends one GET, reads the whole response (Content-Length or chunked), and sends
the next: a closed loop like wrk's. Prints one JSON line: requests, rps, status counts and
latency percentiles in ms. Bounded in time; loopback targets only (the caller's URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import urlsplit


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """(status, headers lowercased) after consuming one whole response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers


def _percentile(latencies: list[float], p: float) -> float | None:
    """The p-th percentile of sorted latencies, in milliseconds."""
    if not latencies:
        return None
    return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 2)


async def _connection(host: str, port: int, request: bytes, start_at: float, stop_at: float,
                      latencies: list[float], statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            writer.write(request)
            status, headers = await _read_response(reader)
            if began >= start_at:  # requests of the warm-up are not counted
                latencies.append(time.perf_counter() - began)
                statuses[status] = statuses.get(status, 0) + 1
            if headers.get("connection") == "close":
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def run(url: str, connections: int, duration: float, warmup: float, headers: list[str]) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    extra = "".join(f"{header}\r\n" for header in headers)
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode("latin-1")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    now = time.perf_counter()
    start_at, stop_at = now + warmup, now + warmup + duration
    await asyncio.gather(*(_connection(host, port, request, start_at, stop_at, latencies, statuses)
                           for _ in range(connections)))
    latencies.sort()
    return {"requests": len(latencies), "rps": round(len(latencies) / duration, 1),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "p50_ms": _percentile(latencies, 50), "p90_ms": _percentile(latencies, 90),
            "p99_ms": _percentile(latencies, 99),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None}


# --- a mix of pages (bench.mix): many paths, figures per kind ----------------------------------


async def _mix_connection(host: str, port: int, requests: list[tuple[str, bytes]], offset: int, start_at: float,
                          stop_at: float, seen: dict[str, dict]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    index = offset
    try:
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            kind, request = requests[index % len(requests)]
            index += 1
            try:
                writer.write(request)
                status, headers = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):  # counted as status 0, then a new connection
                status, headers = 0, {"connection": "close"}
            if began >= start_at:  # requests of the warm-up are not counted
                figures = seen[kind]
                figures["latencies"].append(time.perf_counter() - began)
                figures["statuses"][status] = figures["statuses"].get(status, 0) + 1
                figures["hits"] += headers.get("x-page-cache") == "hit"
            if headers.get("connection") == "close":
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def run_mix(host: str, port: int, requests: list[tuple[str, str, list[str]]], connections: int,
                  duration: float, warmup: float) -> dict:
    """A closed loop like run()'s over a list of (kind, path, headers): each connection walks the
    list from its own offset (the caller shuffles it: a pre-drawn sample of the traffic). Per kind:
    requests, rps, statuses, page-cache hits (the x-page-cache: hit header) and latency percentiles."""
    built = [(kind, (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     + "".join(f"{header}\r\n" for header in headers) + "\r\n").encode("latin-1"))
             for kind, path, headers in requests]
    seen: dict[str, dict] = {kind: {"latencies": [], "statuses": {}, "hits": 0} for kind, _ in built}
    now = time.perf_counter()
    start_at, stop_at = now + warmup, now + warmup + duration
    step = max(1, len(built) // connections)
    await asyncio.gather(*(_mix_connection(host, port, built, number * step, start_at, stop_at, seen)
                           for number in range(connections)))
    kinds = {}
    for kind, figures in seen.items():
        latencies = sorted(figures["latencies"])
        kinds[kind] = {"requests": len(latencies), "rps": round(len(latencies) / duration, 1),
                       "p50_ms": _percentile(latencies, 50), "p90_ms": _percentile(latencies, 90),
                       "p99_ms": _percentile(latencies, 99),
                       "hit_rate": round(figures["hits"] / len(latencies), 3) if latencies else None,
                       "statuses": {str(k): v for k, v in sorted(figures["statuses"].items())}}
    everything = sorted(t for figures in seen.values() for t in figures["latencies"])
    hits = sum(figures["hits"] for figures in seen.values())
    return {"requests": len(everything), "rps": round(len(everything) / duration, 1),
            "p50_ms": _percentile(everything, 50), "p99_ms": _percentile(everything, 99),
            "hit_rate": round(hits / len(everything), 3) if everything else None, "kinds": kinds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("-H", "--header", action="append", default=[])
    args = parser.parse_args()
    host = urlsplit(args.url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        parser.error("load is only ever sent to loopback addresses")
    print(json.dumps(asyncio.run(run(args.url, args.connections, args.duration, args.warmup, args.header))))


if __name__ == "__main__":
    main()
