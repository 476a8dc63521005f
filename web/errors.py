"""Short answers for requests FastAPI could not validate: where and what, never the input itself
(FastAPI's default 422 echoes every submitted value back, a 100 kB field included)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from web.deps import render

LOC_PART_MAX = 40  # a location may contain a key the client chose (a JSON object's key)
MESSAGE_MAX = 160
PROBLEMS_MAX = 10  # a body with a thousand bad fields gets ten lines, not a thousand


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Location and message of each problem; pydantic's `input` and `ctx` are left out on purpose."""
    found = []
    for error in exc.errors()[:PROBLEMS_MAX]:
        loc = [part if isinstance(part, int) else _short(str(part), LOC_PART_MAX) for part in error.get("loc", ())]
        found.append({"loc": loc, "msg": _short(str(error.get("msg", "invalid")), MESSAGE_MAX)})
    return found


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    found = problems(exc)
    if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": found}, status_code=422)
    # A form's fields are named without the leading "body" location.
    lines = "; ".join(f"{' → '.join(str(part) for part in p['loc'][p['loc'][:1] == ['body']:])}: {p['msg']}"
                      for p in found)
    return render(request, "error.html", {"status": 422, "detail": f"The form was not accepted ({lines})."},
                  status_code=422)


def too_long(request: Request, label: str, length: int, limit: int, back: str) -> Response:
    """The HTML answer for a text over its field's limit (purchaseshare.limits.TEXT_MAX): how long it
    was and the limit, never the text itself; the browser's Back keeps what was typed."""
    detail = f"Your {label} has {length} characters; a {label} holds at most {limit}."
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": detail}, status_code=400)
    return render(request, "error.html", {"status": 400, "back": back,
                                          "detail": f"{detail} Go back, shorten it and send it again."},
                  status_code=400)
