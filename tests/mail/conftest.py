"""The web app fixtures (tests/web/conftest.py) for the mail tests that go through the site."""

from tests.web.conftest import app, client, other_client  # noqa: F401  (fixtures, used by name)
