"""The read-only JSON API (CONTRACT: GET /api/v1/users/{handle}/purchases, OpenAPI at /openapi.json).

Responses are built from `purchaseshare.public` only (`to_json(PublicPurchase)`, `PublicProfile`);
the pydantic models below document them and, with extra="forbid", fail loudly if the public view
ever grows a field nobody decided to publish.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict

from purchaseshare import public
from web.deps import DbDep, SettingsDep, not_found, user_or_404

router = APIRouter(prefix="/api/v1", tags=["public"])
NOT_FOUND = {404: {"description": "No such user, or nothing shared under this id", "content": {
    "application/json": {"example": {"detail": "Not found"}}}}}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MerchantOut(_Out):
    name: str | None
    domain: str | None


class ReviewOut(_Out):
    rating: int
    body: str
    verified: str


class ItemOut(_Out):
    name: str
    quantity: int
    price: str | None  # decimal string (never a float); null when the owner hides prices
    currency: str | None
    url: str | None
    image: str | None
    review: ReviewOut | None


class PurchaseOut(_Out):
    id: str
    user: str
    url: str
    merchant: MerchantOut
    bought_on: str | None
    shared_at: str | None
    caption: str | None
    likes: int
    comments: int
    items: list[ItemOut]


class CollectionOut(_Out):
    slug: str
    name: str
    url: str


class UserOut(_Out):
    handle: str
    display_name: str
    bio: str
    avatar_url: str | None
    url: str
    feed: str
    purchases: str
    collections: list[CollectionOut]


@router.get("/users/{handle}", response_model=UserOut, responses=NOT_FOUND, summary="A user's public profile")
def user(handle: str, db: DbDep, settings: SettingsDep) -> UserOut:
    profile = public.profile(db, user_or_404(db, handle))
    home = settings.base_url.rstrip("/") + profile.path
    avatar = settings.base_url.rstrip("/") + profile.avatar_url if profile.avatar_url else None  # our stored copy
    return UserOut(handle=profile.handle, display_name=profile.display_name, bio=profile.bio,
                   avatar_url=avatar, url=home, feed=home + "/feed.atom",
                   purchases=f"{settings.base_url.rstrip('/')}/api/v1/users/{profile.handle}/purchases",
                   collections=[CollectionOut(slug=c.slug, name=c.name, url=f"{home}/c/{c.slug}")
                                for c in profile.collections])


@router.get("/users/{handle}/purchases", response_model=list[PurchaseOut], responses=NOT_FOUND,
            summary="A user's shared purchases, newest first")
def purchases(handle: str, db: DbDep, settings: SettingsDep, response: Response,
              page: Annotated[int, Query(ge=1, le=100_000, description="1-based page number")] = 1
              ) -> list[PurchaseOut]:
    """Approved items of published purchases only, `public.PAGE_SIZE` per page; a `Link: rel="next"`
    header points to the next page when there is one."""
    owner = user_or_404(db, handle)
    views, has_more = public.profile_slice(db, owner, page)
    base = settings.base_url.rstrip("/")
    if has_more:
        response.headers["Link"] = f'<{base}/api/v1/users/{owner.handle}/purchases?page={page + 1}>; rel="next"'
    return [PurchaseOut.model_validate(public.to_json(view, base)) for view in views]


@router.get("/users/{handle}/purchases/{public_id}", response_model=PurchaseOut, responses=NOT_FOUND,
            summary="One shared purchase")
def purchase(handle: str, public_id: str, db: DbDep, settings: SettingsDep) -> PurchaseOut:
    owner = user_or_404(db, handle)
    view = public.one(db, owner.handle, public_id)
    if view is None:
        raise not_found()
    return PurchaseOut.model_validate(public.to_json(view, settings.base_url.rstrip("/")))
