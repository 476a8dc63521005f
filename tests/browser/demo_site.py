"""The demo's data (`purchaseshare.demo.seed`: sample people, a subset of the fixture emails through
the real queue, shares, follows, likes, a comment, notifications) plus a collection, on the test's
database, with the paths of every kind of page worth loading in a browser."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import col, select

from purchaseshare.db import session_scope

ROOT = Path(__file__).resolve().parents[2]
# Emails with product pictures and prices in several currencies, a multi-item order, and a few
# without pictures: every card shape. (Fewer than the demo's 60: the seed stays a few seconds.)
FIXTURE_GLOBS = ("amazon/*.eml", "ebay/*.eml", "walmart/*.eml", "_schemaorg/*.eml", "_generic/generic_1*.eml",
                 "too_good_to_go/*.eml", "steam/*.eml", "apple/*.eml")


@dataclass
class DemoSite:
    password: str
    shared: list[str]  # demo's public purchase pages
    private: list[int]  # demo's purchases still in the inbox (owner pages)
    collection: str  # a public collection page of demo's
    profiles: list[str] = field(default_factory=lambda: ["/u/demo", "/u/sam", "/u/lee"])

    def anonymous_pages(self) -> list[str]:
        return ["/", "/login", "/signup", "/reset", *self.profiles, *self.shared, self.collection, "/api/docs"]

    def owner_pages(self) -> list[str]:
        """What demo (the owner and the demo's operator) sees signed in."""
        return ["/feed", "/notifications", "/inbox", "/purchases", "/purchases/new", "/emails", "/upload",
                "/collections", "/settings", "/settings/addresses", "/settings/forwarding", "/settings/delete",
                "/operator/outbox", "/operator/quarantine", *(f"/purchases/{pid}" for pid in self.private[:2]),
                "/u/demo", self.shared[0], self.collection]


def seed_demo(settings, tmp_path: Path) -> DemoSite:
    from purchaseshare import social
    from purchaseshare.demo import FIXTURES, seed
    from purchaseshare.models import Comment, Purchase, PurchaseItem, User
    from purchaseshare.public import published_filter

    fixtures = tmp_path / "fixtures"
    for pattern in FIXTURE_GLOBS:
        for path in sorted(FIXTURES.glob(pattern)):
            target = fixtures / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    info = seed(settings, fixtures=fixtures, timeout_s=120)
    with session_scope(settings) as session:
        demo = session.exec(select(User).where(User.handle == "demo")).one()
        shared = session.exec(select(Purchase).where(Purchase.user_id == demo.id, published_filter())
                              .order_by(col(Purchase.id))).all()
        commented = set(session.exec(select(Comment.purchase_id)).all())
        shared = sorted(shared, key=lambda p: p.id not in commented)  # the one with a comment first
        private = session.exec(select(Purchase.id).where(Purchase.user_id == demo.id, Purchase.review == "new")
                               .order_by(col(Purchase.id))).all()
        collection = social.create_collection(session, demo, "Kitchen & garden", "Things I use every day.")
        items = session.exec(select(PurchaseItem.id).where(col(PurchaseItem.purchase_id).in_([p.id for p in shared]),
                                                           PurchaseItem.approved == True)  # noqa: E712
                             .order_by(col(PurchaseItem.id))).all()
        for item_id in items[:6]:
            assert social.add_to_collection(session, demo, collection, item_id)
        session.commit()
        assert shared and private, "the seeded demo has no shared or no private purchase"
        return DemoSite(password=info.password, shared=[f"/u/demo/p/{p.public_id}" for p in shared],
                        private=list(private), collection=f"/u/demo/c/{collection.slug}")
