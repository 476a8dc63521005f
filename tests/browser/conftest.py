"""Browser tests: the real app served by uvicorn on loopback (SQLite, in-process worker) and
Debian's Chromium driven by Playwright (pytest-playwright's `page`/`browser` fixtures)."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn

from tests.services.servers import free_port, wait_for_port


@pytest.fixture
def live_server(settings):
    """The app on a free port; yields its base URL. Same settings/database as the test."""
    from web.app import create_app
    from workers.broker import stop_in_process_worker

    port = free_port()
    settings.base_url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield settings.base_url
    finally:
        server.should_exit = True
        thread.join(10)
        stop_in_process_worker()
        time.sleep(0.05)


@pytest.fixture
def browser_context_args(browser_context_args, live_server):
    # Every context (page, new_context) talks to this test's server; contexts close before it stops.
    return {**browser_context_args, "base_url": live_server, "accept_downloads": True}


@pytest.fixture
def site(settings, tmp_path):
    """The demo-like data the grid and third-party tests browse (tests/browser/demo_site.py)."""
    from tests.browser.demo_site import seed_demo

    return seed_demo(settings, tmp_path)
