"""Point 18: /api/docs works in a real browser (Debian's Chromium) under the site's own CSP, and
loads everything from the site itself: no CSP violation, no request leaving 127.0.0.1."""

from __future__ import annotations

from urllib.parse import urlsplit

CSP_WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));"""


def test_the_api_docs_render_with_local_files_and_no_csp_violation(site, page):
    outside: list[str] = []
    loaded: list[str] = []

    def only_loopback(route) -> None:
        url = route.request.url
        if url.startswith("data:") or urlsplit(url).hostname == "127.0.0.1":
            loaded.append(url)
            route.continue_()
        else:  # recorded, and never sent
            outside.append(url)
            route.abort()

    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.on("pageerror", lambda error: console.append(str(error)))
    page.add_init_script(CSP_WATCH)
    page.route("**/*", only_loopback)

    response = page.goto(site.url + "/api/docs")
    assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI rendered the spec: the API's operations are listed and can be opened.
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/users/{handle}/purchases" in path.replace("\u200b", "") for path in paths), paths
    page.locator(".opblock-summary").first.click()
    page.wait_for_selector(".opblock-body", timeout=10_000)

    assert outside == []
    assert page.evaluate("window.__csp") == []
    assert [line for line in console if "Content Security Policy" in line or "Refused" in line] == []
    assert any(url.endswith("/swagger-ui/swagger-ui-bundle.js") for url in loaded)
    assert any(url.endswith("/openapi.json") for url in loaded)
