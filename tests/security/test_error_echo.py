"""Point 17: a request that fails validation gets a short answer naming the field and the problem,
never the submitted value (FastAPI's default 422 echoed a 100 kB field back whole): an HTML page
for a browser's form, JSON for the API."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError

from tests.security.conftest import csrf, share_purchase
from web.errors import problems

CANARY = "ECHO-CANARY-"


def shared_purchase(site, handle: str) -> str:
    return share_purchase(site.settings, site.make_user(handle))


def test_a_100_kb_form_field_is_not_echoed_in_html_or_json(site):
    path = shared_purchase(site, "owner")
    site.make_user("bob")
    body = CANARY + "x" * 100_000
    with site.client() as client:
        site.log_in(client, "bob")
        token = csrf(client, path)
        page = client.post(f"{path}/comments", data={"body": body, "csrf_token": token},
                           headers={"accept": "text/html"})
        assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
        assert CANARY not in page.text and len(page.content) < 8_000
        assert "Not accepted" in page.text and "body: String should have at most" in page.text
        assert page.headers["content-security-policy"]  # the site's own page, with its headers

        answer = client.post(f"{path}/comments", data={"body": body, "csrf_token": token},
                             headers={"accept": "application/json"})
        assert answer.status_code == 422 and CANARY not in answer.text and len(answer.content) < 1_000
        [problem] = answer.json()["detail"]
        assert problem["loc"] == ["body", "body"] and "at most" in problem["msg"]
        assert set(problem) == {"loc", "msg"}  # no "input", no "ctx"


def test_api_validation_errors_are_short_json_without_the_input(site):
    site.make_user("alice")
    with site.client() as client:
        value = CANARY + "9" * 4_000
        answer = client.get(f"/api/v1/users/alice/purchases?page={value}", headers={"accept": "text/html"})
        assert answer.status_code == 422 and answer.headers["content-type"] == "application/json"
        assert CANARY not in answer.text and answer.json() == {"detail": [
            {"loc": ["query", "page"], "msg": "Input should be a valid integer, unable to parse string as an integer"}]}


def test_client_chosen_names_long_messages_and_many_problems_are_cut_short():
    # A JSON object's keys appear in the location, and a validator's message may quote the input.
    errors = [{"type": "x", "loc": ("body", CANARY + "k" * 500, n), "msg": CANARY + "m" * 500, "input": CANARY}
              for n in range(500)]
    found = problems(RequestValidationError(errors))
    assert len(found) == 10
    assert all(len(p["loc"][1]) <= 40 and len(p["msg"]) <= 160 and p["loc"][2] == n for n, p in enumerate(found))
