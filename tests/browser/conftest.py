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
