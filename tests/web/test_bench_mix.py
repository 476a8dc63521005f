"""bench.mix's pieces at a tiny size: the Zipf sampler, and the SQL-built data the app then serves."""

from __future__ import annotations

import random
import warnings
from collections import Counter

from sqlalchemy import func, select

from bench.mix import Zipf, build, sample_requests
from bench.web import log_in
from purchaseshare.db import get_engine
from purchaseshare.models import Follow, Like, Purchase, PurchaseItem, User
from web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_zipf_draws_follow_the_power_law() -> None:
    rng = random.Random(7)
    counts = Counter(Zipf(100, 1.1).draw(rng) for _ in range(40_000))
    assert set(counts) <= set(range(100))
    assert 1.8 < counts[0] / counts[1] < 2.6  # 2 ** 1.1 = 2.14
    assert 9 < counts[0] / counts[9] < 17  # 10 ** 1.1 = 12.6
    assert counts.most_common(1)[0][0] == 0


def test_the_built_data_is_what_the_app_serves(settings) -> None:
    catalog = build(settings, users=60, purchases=400, zipf_s=1.1, rng=random.Random(3))
    with get_engine(settings).connect() as conn:
        def count(table, *where) -> int:
            return conn.execute(select(func.count()).select_from(table.__table__).where(*where)).scalar_one()

        assert count(User) == 60 and count(Purchase) == 400 == catalog.counts["purchases"]
        assert count(PurchaseItem) == catalog.counts["items"]
        assert count(Follow) == catalog.counts["follows"] > 0 and count(Like) == catalog.counts["likes"] > 0
        shared = {pid for owned in catalog.shared.values() for pid, _ in owned}
        assert count(Purchase, Purchase.published_at.is_not(None)) == len(shared) == catalog.counts["shared"]
        approved = set(conn.execute(select(PurchaseItem.purchase_id).where(PurchaseItem.approved)).scalars())
        assert approved == shared  # a shared purchase shows at least one item; a private one none

    with TestClient(create_app(settings, run_worker=False), follow_redirects=False) as client:
        reader = catalog.handles[0]
        log_in(client, reader)  # the cheap bench hash passes the real /login form
        cookie = client.cookies["ps_session"]
        assert client.get("/feed", headers={"accept": "text/html"}).status_code == 200
        client.cookies.clear()
        requests = sample_requests(catalog, Zipf(60, 1.1), [cookie], 0.2, 40, random.Random(5))
        assert {kind for kind, _, _ in requests} == {"profile", "purchase", "feed"}
        for kind, path, headers in requests:
            sent = dict(header.split(": ", 1) for header in headers)
            # 200 for the feed too: an anonymous /feed is sent to /login (the drawn cookie is live).
            assert client.get(path, headers=sent).status_code == 200, (kind, path)
