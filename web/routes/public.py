"""Public pages: the home page, profiles, purchase pages, collections and Atom feeds.

Everything shown here comes from `purchaseshare.public` (PublicPurchase, PublicProfile,
PublicCollection): allow-listed, approved, redacted. Rows are read only to find the owner and to
hand the social partials what they need; no field of a row reaches a template directly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from purchaseshare import public
from purchaseshare.demo import DEMO_HANDLE, is_demo
from web.deps import DbDep, OptionalUser, SettingsDep, not_found, owner_or_404, render, user_or_404
from web.forms import PageDep
from web.routes import social

router = APIRouter()

FEED_SIZE = 50
ATOM = "http://www.w3.org/2005/Atom"
XHTML = "http://www.w3.org/1999/xhtml"


@router.get("/", include_in_schema=False)
def home(request: Request, user: OptionalUser, db: DbDep, settings: SettingsDep):
    # The demo's seeded account is the example; a real site has no account known to be public.
    example = f"/u/{DEMO_HANDLE}" if is_demo(settings) else None
    return render(request, "home.html", {"example_profile": example}, user=user, db=db)


def _robots(profile: public.PublicProfile) -> dict[str, str]:
    # Search engines stay out unless the owner opted in (the meta tag says the same in HTML).
    return {} if profile.allow_indexing else {"X-Robots-Tag": "noindex"}


@router.get("/u/{handle}", include_in_schema=False)
def profile_page(request: Request, handle: str, user: OptionalUser, db: DbDep, settings: SettingsDep,
                 page: PageDep = 1):
    # Three queries whatever the page shows: the owner with their counts, the page, its items
    # (and the collection names when the owner made any).
    owner, counts = owner_or_404(db, handle)
    profile = public.profile(db, owner, with_collections=counts.collections > 0)
    purchases, has_more = public.profile_slice(db, owner, page)
    context = {"profile": profile, "purchases": purchases, "page": page, "has_more": has_more,
               "is_owner": user is not None and user.id == owner.id, "base_url": settings.base_url.rstrip("/"),
               **social.follow_state(db, user, owner, counts)}
    return render(request, "public/profile.html", context, user=user, db=db, headers=_robots(profile))


@router.get("/u/{handle}/p/{public_id}", include_in_schema=False)
def purchase_page(request: Request, handle: str, public_id: str, user: OptionalUser, db: DbDep,
                  settings: SettingsDep):
    found = public.one_with_owner(db, handle, public_id)  # the owner comes with the purchase's row
    if found is None:
        user_or_404(db, handle)  # a renamed handle still redirects
        raise not_found()
    view, owner = found
    profile = public.profile(db, owner, with_collections=False)
    base = settings.base_url.rstrip("/")
    context = {"profile": profile, "purchase": view, "base_url": base, "json_ld": json_ld(view, base, settings.secret_key),
               "og": open_graph(view, base, settings.secret_key), "is_owner": user is not None and user.id == owner.id,
               **social.purchase_social(db, user, view, owner)}
    return render(request, "public/purchase.html", context, user=user, db=db, headers=_robots(profile))


@router.get("/u/{handle}/c/{slug}", include_in_schema=False)
def collection_page(request: Request, handle: str, slug: str, user: OptionalUser, db: DbDep):
    owner, _ = owner_or_404(db, handle)
    found = public.collection(db, owner, slug)
    if found is None:
        raise not_found()
    profile = public.profile(db, owner, with_collections=False)
    context = {"profile": profile, "collection": found, "is_owner": user is not None and user.id == owner.id}
    return render(request, "public/collection.html", context, user=user, db=db, headers=_robots(profile))


@router.get("/u/{handle}/feed.atom", include_in_schema=False)
def atom_feed(handle: str, db: DbDep, settings: SettingsDep) -> Response:
    owner, _ = owner_or_404(db, handle)
    profile = public.profile(db, owner, with_collections=False)
    purchases = public.profile_page(db, owner, 1, FEED_SIZE)
    body = atom(profile, purchases, settings.base_url.rstrip("/"), settings.secret_key)
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers=_robots(profile))


# --- representations of the public view --------------------------------------------------------


def _iso(moment: datetime | None) -> str:
    moment = moment or datetime(1970, 1, 1, tzinfo=UTC)
    if moment.tzinfo is None:  # SQLite hands naive datetimes back; they are stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _money(value: Any) -> str:
    return f"{value:.2f}"


def json_ld(view: public.PublicPurchase, base_url: str, image_key: str) -> Markup:
    """schema.org Products (with Offer, Review, AggregateRating) for a purchase page, ready to sit
    inside <script type="application/ld+json">: '<', '>' and '&' are JSON-escaped, so a name with
    "</script>" in it cannot end the element."""
    page = base_url + view.path
    products = []
    for item in view.items:
        product: dict[str, Any] = {"@type": "Product", "name": item.name, "url": page}
        if item.image:
            product["image"] = base_url + item.image  # our stored copy (crawlers never reach the merchant)
        if view.merchant_name:
            product["brand"] = {"@type": "Brand", "name": view.merchant_name}
        offer: dict[str, Any] = {"@type": "Offer", "url": item.url or page}
        if item.price is not None and item.currency:
            offer.update(price=_money(item.price), priceCurrency=item.currency)
        if view.merchant_name:
            offer["seller"] = {"@type": "Organization", "name": view.merchant_name}
        product["offers"] = offer
        if item.review is not None:
            rating = {"@type": "Rating", "ratingValue": item.review.rating, "bestRating": 5, "worstRating": 1}
            product["review"] = {"@type": "Review", "reviewRating": rating, "reviewBody": item.review.body,
                                 "author": {"@type": "Person", "name": view.owner_name}}
            product["aggregateRating"] = {"@type": "AggregateRating", "ratingValue": item.review.rating,
                                          "reviewCount": 1, "bestRating": 5, "worstRating": 1}
        products.append(product)
    data = {"@context": "https://schema.org", "@graph": products}
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # safe: JSON with every markup character escaped, see above


def open_graph(view: public.PublicPurchase, base_url: str, image_key: str) -> dict[str, str]:
    """Open Graph / Twitter card values (escaped by the template like any text)."""
    where = f" at {view.merchant_name}" if view.merchant_name else ""
    description = view.caption or f"{view.owner_name} bought this{where}."
    image = next((item.image for item in view.items if item.image), None)
    tags = {"og:type": "website", "og:site_name": "PurchaseShare", "og:title": view.title,
            "og:description": description, "og:url": base_url + view.path,
            "twitter:card": "summary_large_image" if image else "summary", "twitter:title": view.title,
            "twitter:description": description}
    if image:
        tags["og:image"] = tags["twitter:image"] = base_url + image  # our stored copy
    return tags


def atom(profile: public.PublicProfile, purchases: list[public.PublicPurchase], base_url: str,
         image_key: str) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of the public view, built as an element tree: the XML library
    escapes every value."""
    ET.register_namespace("", ATOM)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    home = base_url + profile.path
    feed = ET.Element(f"{{{ATOM}}}feed")
    sub(feed, "id", home)
    sub(feed, "title", f"{profile.display_name} on PurchaseShare")
    if profile.bio:
        sub(feed, "subtitle", profile.bio)
    # Newest first: the first entry is the latest change. An empty feed says 1970 rather than
    # reveal anything outside the public view (such as when the account was made).
    sub(feed, "updated", _iso(purchases[0].published_at if purchases else None))
    sub(feed, "link", rel="alternate", type="text/html", href=home)
    sub(feed, "link", rel="self", type="application/atom+xml", href=home + "/feed.atom")
    author = sub(feed, "author")
    sub(author, "name", profile.display_name)
    sub(author, "uri", home)
    sub(feed, "generator", "PurchaseShare")
    for view in purchases:
        link = base_url + view.path
        entry = sub(feed, "entry")
        sub(entry, "id", link)
        sub(entry, "title", view.title)
        sub(entry, "updated", _iso(view.published_at))
        sub(entry, "published", _iso(view.published_at))
        sub(entry, "link", rel="alternate", type="text/html", href=link)
        if view.caption:
            sub(entry, "summary", view.caption)
        content = sub(entry, "content", type="xhtml")
        _xhtml(ET.SubElement(content, f"{{{XHTML}}}div"), view, base_url, image_key)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _xhtml(div: ET.Element, view: public.PublicPurchase, base_url: str, image_key: str) -> None:
    def el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{XHTML}}}{tag}", attrs)
        element.text = text
        return element

    if view.caption:
        el(div, "p", view.caption)
    meta = " ".join(part for part in (f"Bought at {view.merchant_name}" if view.merchant_name else "",
                                      f"on {view.bought_on.isoformat()}" if view.bought_on else "") if part)
    if meta:
        el(div, "p", meta + ".")
    items = el(div, "ul")
    for item in view.items:
        li = el(items, "li")
        if item.image:
            # Our stored copy like the pages: a feed reader must not fetch a tracking pixel either.
            el(li, "img", src=base_url + item.image, alt=item.name, width="64",
               height="64").tail = " "
        target = el(li, "a", item.name, href=item.url) if item.url else el(li, "span", item.name)
        extra = f" × {item.quantity}" if item.quantity != 1 else ""
        if item.price is not None:
            extra += f" — {_money(item.price)} {item.currency or ''}".rstrip()
        target.tail = extra or None
