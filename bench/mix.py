"""Web benchmark under a mix of traffic with writes: `python -m bench.web --mix` (or `python -m bench.mix`).

    python -m bench.web --mix [--postgres | --database-url URL] [--users 10000] [--purchases N]
                        [--duration 40] [--connections 8] [--writes 20] [--feed-users 500] [--keep DIR]

1. Builds a throwaway database directly in SQL (not through the app): USERS users, PURCHASES
   purchases (default 100 000 on SQLite, 1 000 000 on PostgreSQL; owners uniform, 1-3 items, ~60 %
   shared with their items approved), follows (5 uniform + 5 Zipf-popular per user) and likes.
   PostgreSQL: COPY with triggers off (`session_replication_role = replica`: needs a superuser), in
   a private server started like tests/services/servers.py's (--postgres) or an EMPTY database at
   --database-url; SQLite: executemany in a temporary file. Every bench user has the same password
   under a cheap argon2 hash (hundreds of sign-ins in seconds). Prints the build time.
2. Serves the app and the hello-world (one uvicorn process each, as `bench.web`), signs in
   FEED_USERS readers and 40 writers through the real /login form.
3. Measures, in one run: the hello-world (before and after; their mean is `hello_rps`), then
   DURATION seconds of the mix on CONNECTIONS keep-alive connections (bench.loadgen.run_mix, in its
   own process): anonymous profile and purchase pages (half each) whose owner is drawn Zipf(1.1)
   over the users (the purchase uniformly among the owner's shared ones), and the home feed of one
   of the signed-in readers (FEED_SHARE of the requests, default 20 %) - while WRITES public writes
   a second go through the app's own routes (40 % likes/unlikes and 10 % comments on Zipf-drawn
   purchases, 25 % un-shares and 25 % approvals by the writers, who are Zipf-drawn owners too).
   The writes use the app's HTTP routes, so whatever invalidation the app does is exercised.

Prints per page kind rps, p50/p99 and the page-cache hit rate (x-page-cache: hit), the writes
done, the queries per page (cache off, two pages of each kind), and a last JSON line. Targets
(issue 15): min(profile, purchase, feed) >= 0.3 x hello - in one mixed closed loop each kind only
gets its share, so `ratio` = (the whole mix's rps) / hello rps - p99 <= 50 ms for every kind,
queries per page constant. `--writes 0` measures the reads alone (the cache's best case).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 20_000
WRITERS = 40  # comments are rate-limited per user (5 a minute): the writes are spread over 40 people
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- Zipf ---------------------------------------------------------------------------------------


class Zipf:
    """Draws ranks 0..n-1 with P(rank r) proportional to 1 / (r + 1) ** s."""

    def __init__(self, n: int, s: float) -> None:
        self.cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** s for rank in range(n)))

    def draw(self, rng: random.Random) -> int:
        return bisect.bisect_left(self.cumulative, rng.random() * self.cumulative[-1])


# --- the data, as rows of plain values ------------------------------------------------------------

USER_COLUMNS = ("id", "handle", "display_name", "email", "password_hash", "session_version", "forwarding_token",
                "bio", "avatar_url", "default_share_items", "allow_indexing", "raw_retention_days",
                "is_operator", "created_at")
PURCHASE_COLUMNS = ("id", "public_id", "user_id", "source_raw_id", "original_message_id", "kind", "status",
                    "review", "merchant_name", "merchant_domain", "order_number", "order_date", "currency",
                    "total", "subtotal", "shipping", "tax", "discount", "refunded", "parser", "confidence",
                    "warnings", "caption", "hide_prices", "entered_by_hand", "published_at", "created_at",
                    "updated_at")
ITEM_COLUMNS = ("id", "purchase_id", "position", "name", "quantity", "unit_price", "line_total", "url", "image",
                "sku", "approved", "approved_at")
FOLLOW_COLUMNS = ("follower_id", "followee_id", "created_at")
LIKE_COLUMNS = ("user_id", "purchase_id", "created_at")


@dataclass
class Catalog:
    """What the traffic needs to know of the built data."""

    handles: list[str]  # by user id - 1
    by_rank: list[int]  # user ids, most popular first (the Zipf rank)
    shared: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # owner -> [(purchase id, public id)]
    private: dict[int, list[int]] = field(default_factory=dict)  # owner -> purchase ids not shared
    counts: dict[str, int] = field(default_factory=dict)


def bench_password_hash() -> str:
    """A cheap argon2 hash of bench.web.PASSWORD: hundreds of sign-ins take seconds, not minutes
    (the app verifies whatever parameters the stored hash names)."""
    from argon2 import PasswordHasher

    from bench.web import PASSWORD

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)


def user_rows(users: int, now: datetime) -> list[tuple]:
    password = bench_password_hash()
    return [(uid, f"u{uid:07d}", f"User {uid}", f"u{uid:07d}@bench.example", password, 0, secrets.token_hex(8),
             "", None, False, False, None, False, now - timedelta(days=400)) for uid in range(1, users + 1)]


def purchase_chunks(catalog: Catalog, users: int, purchases: int, rng: random.Random,
                    now: datetime) -> Iterator[tuple[list[tuple], list[tuple]]]:
    """(purchase rows, item rows) in chunks of CHUNK purchases; owners uniform over the users."""
    item_id = 0
    for start in range(1, purchases + 1, CHUNK):
        purchase_rows, item_rows = [], []
        for pid in range(start, min(purchases, start + CHUNK - 1) + 1):
            owner = rng.randint(1, users)
            shared = rng.random() < 0.6
            published = now - timedelta(minutes=rng.randint(1, 500_000)) if shared else None
            count = 1 + pid % 3
            prices = [Decimal(rng.randint(199, 25000)) / 100 for _ in range(count)]
            public_id = secrets.token_urlsafe(9)
            purchase_rows.append((
                pid, public_id, owner, None, f"<bench-{pid}@bench.example>", "order", "active",
                "reviewed" if shared else "new", f"Shop {pid % 97}", f"shop{pid % 97}.example", f"ORD-{pid:08d}",
                (now - timedelta(days=pid % 700)).date(), "EUR", sum(prices), sum(prices), None, None, None, None,
                "bench", 0.9, None, "Really happy with this one" if pid % 5 == 0 else None, pid % 11 == 0, False,
                published, published or now, now))
            if shared:
                catalog.shared.setdefault(owner, []).append((pid, public_id))
            else:
                catalog.private.setdefault(owner, []).append(pid)
            for position, price in enumerate(prices):
                item_id += 1
                approved = shared and (position == 0 or pid % 7 != 0)  # every 7th shared purchase: partly
                item_rows.append((item_id, pid, position, f"Bench item {pid}-{position}", 1, price, price,
                                  f"https://shop{pid % 97}.example/p/{pid}-{position}", None, None, approved,
                                  published if approved else None))
        catalog.counts["purchases"] = catalog.counts.get("purchases", 0) + len(purchase_rows)
        catalog.counts["items"] = catalog.counts.get("items", 0) + len(item_rows)
        yield purchase_rows, item_rows


def follow_rows(users: int, zipf: Zipf, by_rank: list[int], rng: random.Random, now: datetime) -> list[tuple]:
    pairs: set[tuple[int, int]] = set()
    for follower in range(1, users + 1):
        for _ in range(5):
            pairs.add((follower, rng.randint(1, users)))
            pairs.add((follower, by_rank[zipf.draw(rng)]))  # people follow the popular ones more
    return [(a, b, now) for a, b in sorted(pairs) if a != b]


def like_rows(catalog: Catalog, users: int, purchases: int, rng: random.Random, now: datetime) -> list[tuple]:
    shared = [pid for owned in catalog.shared.values() for pid, _ in owned]
    pairs: set[tuple[int, int]] = set()
    while shared and len(pairs) < min(300_000, purchases // 4):
        pairs.add((rng.randint(1, users), rng.choice(shared)))
    return [(u, p, now) for u, p in pairs]


# --- loading ------------------------------------------------------------------------------------


def _tables() -> dict[str, str]:
    from purchaseshare.models import Follow, Like, Purchase, PurchaseItem, User

    return {name: model.__table__.name for name, model in (("user", User), ("purchase", Purchase),
                                                            ("item", PurchaseItem), ("follow", Follow),
                                                            ("like", Like))}


class Loader:
    """Appends rows to a table: COPY on PostgreSQL (triggers off), executemany on SQLite."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.raw = engine.raw_connection()
        self.driver = self.raw.driver_connection
        self.postgres = engine.dialect.name == "postgresql"
        if self.postgres:
            with self.driver.cursor() as cursor:
                # Row triggers (the page cache's counter, foreign keys) would cost more than the rows.
                cursor.execute("SET session_replication_role = replica")

    def put(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        names = ", ".join(f'"{column}"' for column in columns)
        if self.postgres:
            with self.driver.cursor() as cursor, cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            self.driver.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
                                    [tuple(_sqlite(v) for v in row) for row in rows])

    def finish(self) -> None:
        if self.postgres:
            with self.driver.cursor() as cursor:
                cursor.execute("SET session_replication_role = DEFAULT")
                for name in ("user", "purchase", "purchase_item"):  # explicit ids: sequences past them
                    cursor.execute(f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                                   f"(SELECT max(id) FROM \"{name}\"))")
        self.driver.commit()
        self.raw.close()
        with self.engine.connect() as conn:  # planner statistics, as a long-running database has them
            from sqlalchemy import text

            conn.execute(text("ANALYZE"))
            conn.commit()


def _sqlite(value):
    """What SQLAlchemy stores on SQLite: decimals and times as text (naive UTC)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def build(settings, users: int, purchases: int, zipf_s: float, rng: random.Random) -> Catalog:
    from sqlalchemy import func, select

    from purchaseshare.db import get_engine, migrate
    from purchaseshare.models import User

    engine = migrate(settings)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(User.__table__)).scalar_one():
            raise SystemExit("error: the database is not empty; give --database-url an empty database")
    engine = get_engine(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    tables = _tables()
    by_rank = list(range(1, users + 1))
    rng.shuffle(by_rank)
    catalog = Catalog(handles=[f"u{uid:07d}" for uid in range(1, users + 1)], by_rank=by_rank)
    zipf = Zipf(users, zipf_s)
    loader = Loader(engine)
    loader.put(tables["user"], USER_COLUMNS, user_rows(users, now))
    for purchase_part, item_part in purchase_chunks(catalog, users, purchases, rng, now):
        loader.put(tables["purchase"], PURCHASE_COLUMNS, purchase_part)
        loader.put(tables["item"], ITEM_COLUMNS, item_part)
    follows = follow_rows(users, zipf, by_rank, rng, now)
    loader.put(tables["follow"], FOLLOW_COLUMNS, follows)
    likes = like_rows(catalog, users, purchases, rng, now)
    loader.put(tables["like"], LIKE_COLUMNS, likes)
    loader.finish()
    catalog.counts.update(users=users, follows=len(follows), likes=len(likes),
                          shared=sum(len(v) for v in catalog.shared.values()))
    return catalog


# --- the traffic --------------------------------------------------------------------------------


def sign_in(base_url: str, handle: str) -> tuple[str, str]:
    """(session cookie, CSRF token) of `handle` through the real /login form."""
    import httpx

    from bench.web import log_in

    with httpx.Client(base_url=base_url, timeout=30) as browser:
        log_in(browser, handle)
        page = browser.get("/settings", headers={"accept": "text/html"})
        token = _CSRF.search(page.text)
        if token is None:
            raise RuntimeError(f"no CSRF token on /settings for {handle} ({page.status_code})")
        browser.get("/feed", headers={"accept": "text/html"})  # as a browser would, cookie updated
        return browser.cookies["ps_session"], token.group(1)


def sample_requests(catalog: Catalog, zipf: Zipf, feed_cookies: list[str], feed_share: float, count: int,
                    rng: random.Random) -> list[tuple[str, str, list[str]]]:
    """A pre-drawn sequence of reads: Zipf-drawn owners' profiles and purchase pages, and feeds."""
    html = "Accept: text/html"
    requests = []
    while len(requests) < count:
        if feed_cookies and rng.random() < feed_share:
            requests.append(("feed", "/feed", [html, f"Cookie: ps_session={rng.choice(feed_cookies)}"]))
            continue
        owner = catalog.by_rank[zipf.draw(rng)]
        handle = catalog.handles[owner - 1]
        owned = catalog.shared.get(owner)
        if rng.random() < 0.5 or not owned:
            requests.append(("profile", f"/u/{handle}", [html]))
        else:
            requests.append(("purchase", f"/u/{handle}/p/{rng.choice(owned)[1]}", [html]))
    return requests


@dataclass
class Writer:
    """One signed-in user writing: likes and comments on popular pages, un-sharing and approving its own."""

    handle: str
    user_id: int
    cookie: str
    csrf: str
    shared: list[tuple[int, str]]
    private: list[int]
    liked: set[str] = field(default_factory=set)


class WriteLoad:
    """RATE public writes a second through the app, from a few threads, until stopped."""

    def __init__(self, base_url: str, writers: list[Writer], catalog: Catalog, zipf: Zipf, rate: float,
                 seed: int, threads: int = 4) -> None:
        self.base_url, self.writers, self.catalog, self.zipf = base_url, writers, catalog, zipf
        self.rate, self.seed, self.threads = rate, seed, threads
        self.stop_event = threading.Event()
        self.done: dict[str, dict[str, int]] = {}
        self.lock = threading.Lock()
        self.workers: list[threading.Thread] = []
        self.started = self.ended = 0.0
        self.withdrawn: set[int] = set()  # purchases un-shared during the run: no likes/comments (a 404)

    def start(self) -> None:
        self.started = time.perf_counter()
        if self.rate <= 0:  # --writes 0: reads alone, the page cache's best case
            return
        for number in range(self.threads):
            thread = threading.Thread(target=self._run, args=(number,), daemon=True)
            thread.start()
            self.workers.append(thread)

    def stop(self) -> dict:
        self.stop_event.set()
        for thread in self.workers:
            thread.join(timeout=30)
        self.ended = time.perf_counter()
        total = sum(sum(statuses.values()) for kind, statuses in self.done.items() if kind != "skipped")
        return {"writes": total, "writes_per_s": round(total / max(1e-9, self.ended - self.started), 1),
                "by_kind": self.done}

    def _count(self, kind: str, status: int) -> None:
        with self.lock:
            statuses = self.done.setdefault(kind, {})
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    def _run(self, number: int) -> None:
        import httpx

        rng = random.Random(self.seed + number)
        mine = self.writers[number::self.threads]
        interval = self.threads / self.rate
        next_at = time.perf_counter()
        with httpx.Client(base_url=self.base_url, timeout=30, follow_redirects=False) as client:
            while not self.stop_event.is_set():
                delay = next_at - time.perf_counter()
                if delay > 0 and self.stop_event.wait(delay):
                    return
                next_at += interval
                writer = rng.choice(mine)
                kind, status = self._write(client, writer, rng)
                self._count(kind, status)

    def _write(self, client, writer: Writer, rng: random.Random) -> tuple[str, int]:
        headers = {"accept": "text/html", "cookie": f"ps_session={writer.cookie}"}
        form = {"csrf_token": writer.csrf}
        draw = rng.random()
        if draw < 0.5 or (not writer.shared and not writer.private):
            owned: list[tuple[int, str]] = []
            for _ in range(20):  # some people share nothing (or un-shared it all): draw again
                owner = self.catalog.by_rank[self.zipf.draw(rng)]
                owned = [entry for entry in self.catalog.shared.get(owner, ()) if entry[0] not in self.withdrawn]
                if owned:
                    break
            else:
                return "skipped", 0
            path = f"/u/{self.catalog.handles[owner - 1]}/p/{rng.choice(owned)[1]}"
            if draw < 0.4:  # like, or unlike what this writer liked before
                verb = "unlike" if path in writer.liked else "like"
                writer.liked.symmetric_difference_update({path})
                return verb, client.post(f"{path}/{verb}", data=form, headers=headers).status_code
            return "comment", client.post(f"{path}/comments", data={**form, "body": "Nice one, where from?"},
                                          headers=headers).status_code
        if (draw < 0.75 and writer.shared) or not writer.private:  # un-share: no item approved any more
            pid, _ = writer.shared.pop(rng.randrange(len(writer.shared)))
            writer.private.append(pid)
            self.withdrawn.add(pid)
            return "unshare", client.post(f"/purchases/{pid}/items", data=form, headers=headers).status_code
        pid = writer.private.pop(rng.randrange(len(writer.private)))  # approve: every item shared
        writer.shared.append((pid, ""))
        self.withdrawn.discard(pid)
        return "approve", client.post(f"/purchases/{pid}/approve", data=form, headers=headers).status_code


# --- running ------------------------------------------------------------------------------------


def run_load(url: str, requests: list[tuple[str, str, list[str]]], connections: int, duration: float) -> dict:
    """The mix through bench.loadgen.run_mix, in a process of its own (as bench.web's load)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"host": parts.hostname, "port": parts.port, "requests": requests, "connections": connections,
                   "duration": duration}, handle)
    try:
        done = subprocess.run([sys.executable, "-m", "bench.mix", "--load-file", handle.name], cwd=ROOT,
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the load process failed: {done.stderr[-3000:]}")
        out = done.stdout
    finally:
        os.unlink(handle.name)
    return json.loads(out)


def _load_main(path: str) -> None:
    import asyncio

    from bench.loadgen import run_mix

    spec = json.loads(Path(path).read_text())
    if spec["host"] not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load is only ever sent to loopback addresses")
    print(json.dumps(asyncio.run(run_mix(spec["host"], spec["port"], [tuple(r) for r in spec["requests"]],
                                         spec["connections"], spec["duration"], 1.0))))


def query_counts(settings, catalog: Catalog, feed_handles: list[str]) -> dict[str, dict]:
    """The page's own queries (cache off) on two pages of each kind showing different amounts."""
    from bench.web import count_queries

    by_size = sorted((len(owned), owner) for owner, owned in catalog.shared.items())
    small, large = by_size[len(by_size) // 10][1], by_size[-1][1]
    pages: dict[str, tuple[str, str | None]] = {}
    for label, owner in (("small", small), ("large", large)):
        handle = catalog.handles[owner - 1]
        pages[f"profile_{label}"] = (f"/u/{handle}", None)
        pages[f"purchase_{label}"] = (f"/u/{handle}/p/{catalog.shared[owner][0][1]}", None)
    for label, handle in zip(("a", "b"), feed_handles[:2], strict=False):
        pages[f"feed_{label}"] = ("/feed", handle)
    return count_queries(settings.model_copy(update={"page_cache_mb": 0}), pages)


@contextlib.contextmanager
def _database(args) -> Iterator[str | None]:
    if args.postgres:
        from tests.services.servers import postgres_server

        with postgres_server() as server:
            yield server.create_database("benchmix")
    else:
        yield args.database_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--purchases", type=int, help="default 100 000 on SQLite, 1 000 000 on PostgreSQL")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of the mix")
    parser.add_argument("--hello-duration", type=float, default=8.0, help="seconds of hello-world, before and after")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--writes", type=float, default=20.0, help="public writes per second during the mix")
    parser.add_argument("--feed-users", type=int, default=500)
    parser.add_argument("--feed-share", type=float, default=0.2, help="share of reads that are a home feed")
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--postgres", action="store_true", help="a private PostgreSQL server (throwaway)")
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database")
    parser.add_argument("--keep", type=Path, help="keep the data dir here (default: a temporary dir, removed)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-cache", action="store_true",
                        help="serve the app with its page cache off (PURCHASESHARE_PAGE_CACHE_MB=0): every view renders")
    parser.add_argument("--load-file", help=argparse.SUPPRESS)  # internal: the load process
    args = parser.parse_args(argv)
    if args.load_file:
        _load_main(args.load_file)
        return
    postgres = bool(args.postgres or args.database_url)
    purchases = args.purchases or (1_000_000 if postgres else 100_000)
    if args.users < WRITERS + 2 or args.feed_users > args.users:
        parser.error(f"--users must be at least {WRITERS + 2} and at least --feed-users")
    with _database(args) as database_url:
        _run(args, database_url, purchases)


def _run(args, database_url: str | None, purchases: int) -> None:
    from bench.web import SECRET, Server, run_python_loadgen

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench-mix-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SMTP_URL", "IMAP_URL")}
    env.update({"PURCHASESHARE_DATA_DIR": str(data_dir), "SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT)})
    if database_url:
        env["DATABASE_URL"] = database_url
    os.environ.clear()
    os.environ.update(env)
    from purchaseshare.config import Settings, get_settings

    get_settings.cache_clear()
    settings = Settings()
    servers: list[Server] = []
    notes: list[str] = []
    rng = random.Random(args.seed)
    try:
        started = time.perf_counter()
        catalog = build(settings, args.users, purchases, args.zipf, rng)
        build_s = time.perf_counter() - started
        database = "postgresql" if database_url else "sqlite"
        print(f"built {database}: {catalog.counts['users']} users, {catalog.counts['purchases']} purchases "
              f"({catalog.counts['shared']} shared), {catalog.counts['items']} items, {catalog.counts['follows']} "
              f"follows, {catalog.counts['likes']} likes in {build_s:.1f}s", flush=True)
        zipf = Zipf(args.users, args.zipf)
        pick = random.Random(args.seed + 1)
        writer_ids: list[int] = []
        while len(writer_ids) < WRITERS:  # active users are the popular ones: drawn by the same Zipf
            owner = catalog.by_rank[zipf.draw(pick)]
            if owner not in writer_ids and catalog.shared.get(owner) and catalog.private.get(owner):
                writer_ids.append(owner)
        readers = [uid for uid in pick.sample(range(1, args.users + 1), args.feed_users + WRITERS)
                   if uid not in writer_ids][:args.feed_users]

        started = time.perf_counter()
        queries = query_counts(settings, catalog, [catalog.handles[uid - 1] for uid in readers])
        for name, figures in queries.items():
            print(f"  {name:16} status {figures['status']}  {figures['queries']:3d} queries  "
                  f"{figures['purchases_shown']:3d} purchases shown", flush=True)
        constant = {kind: len({f["queries"] for n, f in queries.items() if n.startswith(kind)}) == 1
                    for kind in ("profile", "purchase", "feed")}

        app_server = Server("web.app:create_app", {**env, "PURCHASESHARE_PAGE_CACHE_MB": "0"} if args.no_cache else env,
                            "/healthz")
        servers.append(app_server)
        hello = Server("bench.web:hello_app", env, "/")
        servers.append(hello)
        from concurrent.futures import ThreadPoolExecutor

        handles = [catalog.handles[uid - 1] for uid in readers + writer_ids]
        with ThreadPoolExecutor(4) as pool:
            signed = list(pool.map(lambda handle: sign_in(app_server.url, handle), handles))
        feed_cookies = [cookie for cookie, _ in signed[:len(readers)]]
        writers = [Writer(handle=catalog.handles[uid - 1], user_id=uid, cookie=cookie, csrf=csrf,
                          shared=list(catalog.shared[uid]), private=list(catalog.private[uid]))
                   for uid, (cookie, csrf) in zip(writer_ids, signed[len(readers):], strict=True)]
        print(f"  signed in {len(feed_cookies)} readers and {len(writers)} writers in "
              f"{time.perf_counter() - started:.1f}s (with the query counts)", flush=True)

        requests = sample_requests(catalog, zipf, feed_cookies, args.feed_share, 200_000, random.Random(args.seed + 2))
        html = ["Accept: text/html"]
        hello_before = run_python_loadgen(hello.url + "/", args.connections, args.hello_duration, html)
        print(f"  hello (before) {hello_before}", flush=True)
        writes = WriteLoad(app_server.url, writers, catalog, zipf, args.writes, args.seed + 3)
        writes.start()
        try:
            mix = run_load(app_server.url, requests, args.connections, args.duration)
        finally:
            written = writes.stop()
        hello_after = run_python_loadgen(hello.url + "/", args.connections, args.hello_duration, html)
        print(f"  hello (after)  {hello_after}", flush=True)
        hello_rps = round((hello_before["rps"] + hello_after["rps"]) / 2, 1)

        print(f"\n  {'kind':10} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'hit rate':>9}  statuses")
        for kind in ("profile", "purchase", "feed"):
            figures = mix["kinds"].get(kind)
            if figures:
                print(f"  {kind:10} {figures['rps']:8.1f} {figures['p50_ms']:8.2f} {figures['p99_ms']:8.2f} "
                      f"{figures['hit_rate']:9.3f}  {figures['statuses']}")
        print(f"  {'all':10} {mix['rps']:8.1f} {mix['p50_ms']:8.2f} {mix['p99_ms']:8.2f} {mix['hit_rate']:9.3f}")
        print(f"  {'hello':10} {hello_rps:8.1f} {hello_before['p50_ms']:8.2f} {hello_before['p99_ms']:8.2f}")
        print(f"  writes: {written}\n", flush=True)
        bad_writes = {kind: s for kind, s in written["by_kind"].items() if set(s) - {"303", "0"}}
        if bad_writes:
            notes.append(f"writes answered other than 303: {bad_writes}")
        if written["writes_per_s"] < 0.9 * args.writes:  # the app could not keep up
            notes.append(f"the writer reached only {written['writes_per_s']} writes/s of {args.writes}")

        kinds = mix["kinds"]
        summary = {
            "mix_rps": mix["rps"], "hello_rps": hello_rps,
            # Each kind gets its share of one closed loop; the ratio compares the whole mix with hello.
            "ratio": round(mix["rps"] / hello_rps, 3) if hello_rps else None,
            "rps": {kind: figures["rps"] for kind, figures in kinds.items()},
            "p50_ms": {kind: figures["p50_ms"] for kind, figures in kinds.items()},
            "p99_ms": {kind: figures["p99_ms"] for kind, figures in kinds.items()},
            "cache_hit_rate": mix["hit_rate"],  # the name ../shared/CONTRACT.md relies on
            "hit_rate": {"all": mix["hit_rate"], **{kind: figures["hit_rate"] for kind, figures in kinds.items()}},
            "hello_p99_ms": max(hello_before["p99_ms"], hello_after["p99_ms"]),
            "writes_per_s": written["writes_per_s"], "writes": written["by_kind"],
            "queries_per_page": {name: figures["queries"] for name, figures in queries.items()},
            "queries_constant": constant,
            "targets": {"ratio": 0.3, "p99_ms": 50},
            "database": database, "connections": args.connections, "duration_s": args.duration,
            "zipf": args.zipf, "feed_users": len(feed_cookies), "feed_share": args.feed_share,
            "build_s": round(build_s, 1), "load_average": round(os.getloadavg()[0], 2),
            **catalog.counts, "notes": notes,
        }
        print(json.dumps(summary))
    finally:
        for server in servers:
            server.stop()
        if servers and servers[0].process.stderr:  # the app's own errors (a 500's traceback), for the record
            errors = servers[0].process.stderr.read().strip()
            if errors:
                print(f"app stderr (last lines):\n{chr(10).join(errors.splitlines()[-60:])}", file=sys.stderr)
        from purchaseshare.db import dispose_engines

        dispose_engines()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
