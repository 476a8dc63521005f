"""Web benchmark: a public profile page and a home feed page against a bare Starlette hello-world.

    python -m bench.web [--users 10000] [--purchases 100000] [--duration 10] [--connections 8]
                        [--database-url URL] [--loadgen auto|wrk|python] [--keep DIR]
    python -m bench.web --mix [...]   (a Zipf mix of pages with writes: see bench/mix.py)

1. Builds a database (SQLite in a temporary dir, or an EMPTY database at --database-url) with
   USERS users and PURCHASES purchases (1-3 items each, ~60 % shared, some only partly), follows
   (~5 per user), likes and comments, in bulk (SQLAlchemy core executemany). Named users: `star`
   (300 shared purchases), `ten` (exactly 10), `reader` (follows star and 49 others), `reader10`
   (follows only ten).
2. Counts SQL queries per page in an instrumented in-process run (an engine event around one
   request): the profile and the feed with 10 and with 20 purchases on the page must cost the
   same number of queries.
3. Serves the app (`web.app:create_app`) and a hello-world (`bench.web:hello_app`) the same way:
   one uvicorn process each, same flags, on loopback, one at a time; the load generator (wrk when
   installed, else bench/loadgen.py, in its own process) measures requests/s and latency for
   /u/star, /feed (signed in as reader) and the hello-world. Repeat views of those pages come from
   the app's page cache (web/page_cache.py: exact invalidation by a database generation counter),
   as they would in production; a second app process with the cache off is measured too, for the
   cost of a first view.

The last line is JSON: profile_rps, feed_rps, hello_rps, ratio (= min(profile, feed) / hello;
target >= 0.3), p99_ms (target <= 50), queries_per_page (the page's own queries, cache off),
queries_per_repeat_view (cache on), and profile_rps_uncached / feed_rps_uncached.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tests.services.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-web-secret-key"
CHUNK = 5000
_LINK = re.compile(r'href="(/u/[^/"]+/p/[A-Za-z0-9_-]+)"')


def hello_app():
    """The floor: a bare Starlette app answering one route (uvicorn factory)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(_request):
        return PlainTextResponse("Hello, world!")

    return Starlette(routes=[Route("/", hello)])


# --- building the database ----------------------------------------------------------------------


def build_database(settings, users: int, purchases: int, rng: random.Random) -> dict:
    from sqlalchemy import func, insert, select, text

    from purchaseshare.db import get_engine, migrate
    from purchaseshare.models import Comment, Follow, Like, Purchase, PurchaseItem, User
    from web.security import hash_password

    engine = migrate(settings)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(User.__table__)).scalar_one():
            raise SystemExit("error: the database is not empty; give --database-url an empty database")
    now = datetime.now(UTC).replace(microsecond=0)
    password = hash_password(PASSWORD)
    named = ["star", "ten", "reader", "reader10"]
    user_rows = []
    for uid in range(1, users + 1):
        handle = named[uid - 1] if uid <= len(named) else f"u{uid:05d}"
        user_rows.append({
            "id": uid, "handle": handle, "display_name": handle.title(), "email": f"{handle}@bench.example",
            "password_hash": password, "session_version": 0, "forwarding_token": secrets.token_hex(8),
            "bio": "", "avatar_url": None, "default_share_items": False, "allow_indexing": False,
            "raw_retention_days": None, "is_operator": False, "created_at": now - timedelta(days=400),
        })
    star, ten, reader, reader10 = 1, 2, 3, 4
    owners = [star] * 300 + [ten] * 10
    owners += [rng.randint(5, users) for _ in range(max(0, purchases - len(owners)))]
    owners = owners[:purchases]

    purchase_rows, item_rows, shared_ids = [], [], []
    item_id = 0
    for pid, owner in enumerate(owners, start=1):
        shared = owner in (star, ten) or rng.random() < 0.6
        published = now - timedelta(minutes=rng.randint(1, 500_000)) if shared else None
        count = 1 + pid % 3
        prices = [Decimal(rng.randint(199, 25000)) / 100 for _ in range(count)]
        purchase_rows.append({
            "id": pid, "public_id": secrets.token_urlsafe(9), "user_id": owner, "source_raw_id": None,
            "original_message_id": f"<bench-{pid}@bench.example>", "kind": "order", "status": "active",
            "review": "reviewed" if shared else "new", "merchant_name": f"Shop {pid % 97}",
            "merchant_domain": f"shop{pid % 97}.example", "order_number": f"ORD-{pid:08d}",
            "order_date": (now - timedelta(days=pid % 700)).date(), "currency": "EUR", "total": sum(prices),
            "subtotal": sum(prices), "shipping": None, "tax": None, "discount": None, "refunded": None,
            "parser": "bench", "confidence": 0.9, "warnings": None,
            "caption": "Really happy with this one" if pid % 5 == 0 else None, "hide_prices": pid % 11 == 0,
            "entered_by_hand": False, "published_at": published, "created_at": published or now, "updated_at": now,
        })
        if shared:
            shared_ids.append(pid)
        for position, price in enumerate(prices):
            item_id += 1
            approved = shared and (position == 0 or pid % 7 != 0)  # every 7th shared purchase: partly
            item_rows.append({
                "id": item_id, "purchase_id": pid, "position": position, "name": f"Bench item {pid}-{position}",
                "quantity": 1, "unit_price": price, "line_total": price,
                "url": f"https://shop{pid % 97}.example/p/{pid}-{position}", "image": None, "sku": None,
                "approved": approved, "approved_at": published if approved else None,
            })

    follows = {(reader, star), (reader10, ten)}
    active = sorted({owner for owner in owners if owner > 4})
    while len([f for f in follows if f[0] == reader]) < 50:
        follows.add((reader, rng.choice(active)))
    for follower in range(5, users + 1):
        for _ in range(5):
            followee = rng.randint(1, users)
            if followee != follower:
                follows.add((follower, followee))
    follow_rows = [{"follower_id": a, "followee_id": b, "created_at": now} for a, b in sorted(follows)]

    likes: set[tuple[int, int]] = set()
    star_shared = [pid for pid, owner in enumerate(owners, start=1) if owner == star]
    for pid in star_shared[:60]:
        for _ in range(3):
            likes.add((rng.randint(5, users), pid))
    while len(likes) < min(30_000, purchases // 3):
        likes.add((rng.randint(1, users), rng.choice(shared_ids)))
    like_rows = [{"user_id": u, "purchase_id": p, "created_at": now} for u, p in likes]
    comment_rows = [{"purchase_id": rng.choice(shared_ids), "user_id": rng.randint(1, users),
                     "body": "Where did you get this? Looks great.", "created_at": now}
                    for _ in range(min(10_000, purchases // 10))]

    with get_engine(settings).begin() as conn:
        for table, rows in ((User, user_rows), (Purchase, purchase_rows), (PurchaseItem, item_rows),
                            (Follow, follow_rows), (Like, like_rows), (Comment, comment_rows)):
            for start in range(0, len(rows), CHUNK):
                conn.execute(insert(table.__table__), rows[start:start + CHUNK])
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for name in ("user", "purchase", "purchase_item"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                                  f"(SELECT max(id) FROM \"{name}\"))"))
        conn.execute(text("ANALYZE"))  # planner statistics, as a long-running database has them
    return {"users": len(user_rows), "purchases": len(purchase_rows), "items": len(item_rows),
            "shared": len(shared_ids), "follows": len(follow_rows), "likes": len(like_rows),
            "comments": len(comment_rows)}


PASSWORD = "bench password 1"  # every bench user's (one argon2 hash, computed once)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def log_in(client, handle: str) -> str:
    """Sign in through the real /login form (an httpx or TestClient client); the session cookie."""
    form = client.get("/login", headers={"accept": "text/html"})
    token = _CSRF.search(form.text)
    if form.status_code != 200 or token is None:
        raise RuntimeError(f"/login answered {form.status_code} without a form")
    response = client.post("/login", data={"handle": handle, "password": PASSWORD, "csrf_token": token.group(1)},
                           headers={"accept": "text/html"})
    if response.status_code != 303 or "ps_session" not in client.cookies:
        raise RuntimeError(f"logging in as {handle} failed: {response.status_code}")
    return client.cookies["ps_session"]


# --- queries per page ---------------------------------------------------------------------------


def count_queries(settings, pages: dict[str, tuple[str, str | None]]) -> dict[str, dict]:
    """For each page: SQL statements run for one request (after a warm-up request) and how many
    purchases it showed. In-process, with an engine event. Run with the settings' page cache: pass
    page_cache_mb=0 for the page's own queries, the default for what a repeat view costs."""
    import warnings

    from sqlalchemy import event

    from purchaseshare.db import get_engine
    from web.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    engine = get_engine(settings)
    counter = {"n": 0}

    def count(*_args) -> None:
        counter["n"] += 1

    results = {}
    app = create_app(settings, run_worker=False)
    reader = app.state.generation_reader  # the page cache's own query, outside the engine's events
    with TestClient(app, follow_redirects=False) as client:
        event.listen(engine, "before_cursor_execute", count)
        try:
            for name, (path, handle) in pages.items():
                client.cookies.clear()
                if handle:
                    log_in(client, handle)
                for _ in range(2):  # warm-up: the first view after logging in also makes the CSRF token
                    client.get(path, headers={"accept": "text/html"})
                counter["n"], generation_reads = 0, reader.queries
                response = client.get(path, headers={"accept": "text/html"})
                results[name] = {"status": response.status_code,
                                 "queries": counter["n"] + reader.queries - generation_reads,
                                 "purchases_shown": len(set(_LINK.findall(response.text)))}
        finally:
            event.remove(engine, "before_cursor_execute", count)
    return results


# --- serving and load -----------------------------------------------------------------------------


class Server:
    """One uvicorn process on loopback; the same flags for every target."""

    def __init__(self, factory: str, env: dict[str, str], ready_path: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{factory} exited: {self.process.stderr.read() if self.process.stderr else ''}")
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{factory} did not start on {self.url}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _header_args(headers: list[str]) -> list[str]:
    return [arg for header in headers for arg in ("-H", header)]


def run_wrk(url: str, connections: int, duration: float, headers: list[str]) -> dict:
    subprocess.run(["wrk", "-t1", f"-c{connections}", "-d1s", *_header_args(headers), url],
                   check=True, capture_output=True)  # warm-up
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
               *_header_args(headers), url]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    latency = {m.group(1): _ms(m.group(2), m.group(3))
               for m in re.finditer(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": round(rps, 1), "p50_ms": round(latency.get("50", 0.0), 2), "p90_ms": round(latency.get("90", 0.0), 2),
            "p99_ms": round(latency.get("99", 0.0), 2), "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(0) if errors else None}


def run_python_loadgen(url: str, connections: int, duration: float, headers: list[str]) -> dict:
    command = [sys.executable, "-m", "bench.loadgen", url, "--connections", str(connections),
               "--duration", str(duration), "--warmup", "1", *_header_args(headers)]
    result = json.loads(subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    ok = sum(count for status, count in result["statuses"].items() if status.startswith(("2", "3")))
    return {"rps": result["rps"], "p50_ms": result["p50_ms"], "p90_ms": result["p90_ms"],
            "p99_ms": result["p99_ms"], "non_2xx": result["requests"] - ok, "socket_errors": None}


def _median_round(figures: list[dict]) -> dict:
    """The round with the median requests/s (its latencies with it), errors summed over rounds."""
    ordered = sorted(figures, key=lambda f: f["rps"])
    middle = dict(ordered[len(ordered) // 2])
    middle["non_2xx"] = sum(f["non_2xx"] for f in figures)
    middle["socket_errors"] = "; ".join(f["socket_errors"] for f in figures if f["socket_errors"]) or None
    middle["rps_rounds"] = [f["rps"] for f in figures]
    return middle


def main() -> None:
    if "--mix" in sys.argv[1:]:  # the traffic mix with writes: bench/mix.py, its own options
        from bench.mix import main as mix_main

        mix_main([arg for arg in sys.argv[1:] if arg != "--mix"])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--purchases", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per target")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; DURATION is split between them")
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database to use instead of SQLite")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--keep", type=Path, help="keep the data dir here (default: a temporary dir, removed)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.users < 60:
        parser.error("--users must be at least 60 (the reader follows 50 people)")
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    if loadgen == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --loadgen python")

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench-web-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SMTP_URL", "IMAP_URL")}
    env.update({"PURCHASESHARE_DATA_DIR": str(data_dir), "SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT)})
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    os.environ.clear()
    os.environ.update(env)
    from purchaseshare.config import Settings, get_settings

    get_settings.cache_clear()
    settings = Settings()
    notes: list[str] = []
    servers: list[Server] = []
    try:
        started = time.perf_counter()
        built = build_database(settings, args.users, args.purchases, random.Random(args.seed))
        build_s = time.perf_counter() - started
        database = "postgresql" if args.database_url else "sqlite"
        print(f"built {database}: {built['users']} users, {built['purchases']} purchases ({built['shared']} shared), "
              f"{built['items']} items, {built['follows']} follows, {built['likes']} likes, "
              f"{built['comments']} comments in {build_s:.1f}s", flush=True)

        pages = {
            "profile_10": ("/u/ten", None), "profile_20": ("/u/star", None), "profile_20_page2": ("/u/star?page=2", None),
            "feed_10": ("/feed", "reader10"), "feed_20": ("/feed", "reader"), "feed_20_page2": ("/feed?page=2", "reader"),
        }
        # The page's own queries (cache off), then what a repeat view costs with the cache on.
        queries = count_queries(settings.model_copy(update={"page_cache_mb": 0}), pages)
        hit_queries = {name: figures["queries"] for name, figures in count_queries(settings, pages).items()}
        print(f"  queries on a repeat view (page cache): {hit_queries}", flush=True)
        for name, figures in queries.items():
            print(f"  {name:18} status {figures['status']}  {figures['queries']:3d} queries  "
                  f"{figures['purchases_shown']:3d} purchases shown", flush=True)
            if figures["status"] != 200:
                notes.append(f"{name}: status {figures['status']} in the instrumented run")
        for page in ("profile", "feed"):
            counts = {figures["queries"] for name, figures in queries.items() if name.startswith(page)}
            shown = [queries[f"{page}_10"]["purchases_shown"], queries[f"{page}_20"]["purchases_shown"]]
            if len(counts) != 1:
                notes.append(f"{page}: queries differ with the page size: {sorted(counts)}")
            if shown != [10, 20]:
                notes.append(f"{page}: pages showed {shown} purchases, expected [10, 20]")

        measure = run_wrk if loadgen == "wrk" else run_python_loadgen
        html = "Accept: text/html"
        # Both servers up at once and measured in alternation, round after round: load from other
        # processes on the machine then hits every target alike; the median round is reported.
        app_server = Server("web.app:create_app", env, "/healthz")
        servers.append(app_server)
        hello = Server("bench.web:hello_app", env, "/")
        servers.append(hello)
        # The same app with its page cache off: what a first view (or a page just changed) costs.
        uncached = Server("web.app:create_app", {**env, "PURCHASESHARE_PAGE_CACHE_MB": "0"}, "/healthz")
        servers.append(uncached)
        import httpx

        with httpx.Client(base_url=app_server.url, timeout=10) as browser:
            log_in(browser, "reader")
            browser.get("/feed", headers={"accept": "text/html"})  # as a browser would, cookie updated
            cookie = browser.cookies["ps_session"]
        signed_in = [html, f"Cookie: ps_session={cookie}"]
        targets = {"hello": (hello.url + "/", [html]), "profile": (app_server.url + "/u/star", [html]),
                   "feed": (app_server.url + "/feed", signed_in),
                   "profile_uncached": (uncached.url + "/u/star", [html]),
                   "feed_uncached": (uncached.url + "/feed", signed_in)}
        for name, (url, headers) in list(targets.items()):
            check = httpx.get(url, headers=dict(h.split(": ", 1) for h in headers), timeout=10)
            if check.status_code != 200:
                notes.append(f"{name}: {url} answered {check.status_code}; not measured")
                del targets[name]
        rounds: dict[str, list[dict]] = {name: [] for name in targets}
        per_round = args.duration / args.rounds
        for number in range(args.rounds):
            for name, (url, headers) in targets.items():
                rounds[name].append(measure(url, args.connections, per_round, headers))
                print(f"  round {number + 1} {name:8} {rounds[name][-1]}", flush=True)
        results = {name: _median_round(figures) for name, figures in rounds.items()}
        for name, figures in results.items():
            if figures["non_2xx"] or figures["socket_errors"]:
                notes.append(f"{name}: {figures['non_2xx']} non-2xx responses, {figures['socket_errors']}")

        measured = [results[name]["rps"] for name in ("profile", "feed") if name in results]
        hello_rps = results["hello"]["rps"] if "hello" in results else None
        query_counts = {name: figures["queries"] for name, figures in queries.items()}
        summary = {
            "profile_rps": results.get("profile", {}).get("rps"),
            "feed_rps": results.get("feed", {}).get("rps"),
            "hello_rps": hello_rps,
            # Without the page cache (first views, pages just changed), for context; not the target.
            "profile_rps_uncached": results.get("profile_uncached", {}).get("rps"),
            "feed_rps_uncached": results.get("feed_uncached", {}).get("rps"),
            "ratio": round(min(measured) / hello_rps, 3) if measured and hello_rps else None,
            "p99_ms": {name: figures["p99_ms"] for name, figures in results.items()},
            "p50_ms": {name: figures["p50_ms"] for name, figures in results.items()},
            "queries_per_page": query_counts,
            "queries_per_repeat_view": hit_queries,
            # None when a page did not answer 200 (nothing to compare).
            "queries_constant": None if any(f["status"] != 200 for f in queries.values()) else all(
                len({v for k, v in query_counts.items() if k.startswith(page)}) == 1 for page in ("profile", "feed")),
            "targets": {"ratio": 0.3, "p99_ms": 50},
            "database": database, "loadgen": loadgen, "connections": args.connections,
            "duration_s": args.duration, "rounds": args.rounds, "build_s": round(build_s, 1),
            "load_average": round(os.getloadavg()[0], 2),  # other processes on the machine, for context
            **{key: built[key] for key in ("users", "purchases", "items", "shared", "follows", "likes", "comments")},
            "notes": notes,
        }
        print(json.dumps(summary))
    finally:
        for server in servers:
            server.stop()
        from purchaseshare.db import dispose_engines

        dispose_engines()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
