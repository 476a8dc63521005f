"""/api/docs: Swagger UI served from this site (the files shipped by the fastapi-offline package),
started by a static script: nothing loads from a CDN and the site's CSP (script-src 'self', no
inline script) holds on the docs page too. FastAPI's own docs page loads jsdelivr with an inline
script, so it is turned off (docs_url=None)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).with_name("static")  # swagger-ui-bundle.js, swagger-ui.css

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>PurchaseShare API</title>
  <link rel="stylesheet" href="/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-spec-url="/openapi.json"><p>The API is described in <a href="/openapi.json">openapi.json</a>.</p></div>
  <script src="/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/static/api-docs.js"></script>
</body>
</html>
"""


def add_api_docs(app: FastAPI) -> None:
    app.mount("/swagger-ui", StaticFiles(directory=ASSETS), name="api-docs-assets")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(PAGE)
