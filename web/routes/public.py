"""Public pages: the home page, profiles, purchase pages, Atom feeds (rendered from purchaseshare.public)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from web.deps import DbDep, OptionalUser, render

router = APIRouter()


@router.get("/", include_in_schema=False)
def home(request: Request, user: OptionalUser, db: DbDep):
    return render(request, "home.html", user=user, db=db)
