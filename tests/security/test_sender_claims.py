"""Point 11: claiming an address another account has not verified yet never kills that account's
link. Both links work until one is used; whoever verifies first owns the address, and the other
account's link then stops working. A verified address cannot be claimed."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from purchaseshare.db import session_scope
from purchaseshare.models import OutboxMail, SenderAddress, User
from tests.security.conftest import post_form

ADDRESS = "shared@outside.test"


def links(site) -> list[str]:
    """The verification links mailed to ADDRESS, oldest first, as paths."""
    with session_scope(site.settings) as session:
        bodies = session.exec(select(OutboxMail.body).where(OutboxMail.to_addr == ADDRESS)
                              .order_by(OutboxMail.id)).all()
    return [re.search(re.escape(site.url) + r"(/verify/[A-Za-z0-9_.\-]+)", body).group(1) for body in bodies]


def owner_of(site) -> tuple[str, bool] | None:
    with session_scope(site.settings) as session:
        found = session.exec(select(User.handle, SenderAddress.verified_at).join(User)
                             .where(SenderAddress.address == ADDRESS)).first()
    return None if found is None else (found[0], found[1] is not None)


def claim(site, client) -> None:
    answer = post_form(client, "/settings/addresses", {"address": ADDRESS}, page="/settings/addresses")
    assert answer.status_code == 303


@pytest.mark.parametrize("first_to_verify", ["victim", "attacker"])
def test_a_second_claim_keeps_the_first_link_and_the_first_to_verify_wins(site, first_to_verify):
    site.make_user("victim")
    site.make_user("attacker")
    with site.client() as victim, site.client() as attacker:
        site.log_in(victim, "victim")
        site.log_in(attacker, "attacker")
        claim(site, victim)
        claim(site, attacker)  # used to delete the victim's pending row, and so its link
        assert owner_of(site) == ("victim", False)
        victim_link, attacker_link = links(site)
        clients = {"victim": (victim, victim_link), "attacker": (attacker, attacker_link)}

        # Each link is its account's alone, and both still work.
        assert victim.get(attacker_link, headers={"accept": "text/html"}).status_code == 404
        assert attacker.get(victim_link, headers={"accept": "text/html"}).status_code == 404
        for client, path in clients.values():
            assert client.get(path, headers={"accept": "text/html"}).status_code == 200

        winner, winner_link = clients[first_to_verify]
        loser_name = "attacker" if first_to_verify == "victim" else "victim"
        loser, loser_link = clients[loser_name]
        assert post_form(winner, winner_link, page=winner_link).status_code == 303
        assert owner_of(site) == (first_to_verify, True)

        # The other claim is dropped: its link no longer works, and cannot take the address over.
        assert loser.get(loser_link, headers={"accept": "text/html"}).status_code == 400
        assert post_form(loser, loser_link, page="/settings/addresses").status_code == 400
        assert owner_of(site) == (first_to_verify, True)
        again = post_form(loser, "/settings/addresses", {"address": ADDRESS}, page="/settings/addresses")
        assert again.status_code == 400 and "verified by another account" in again.text
        # A used link stays used.
        assert post_form(winner, winner_link, page="/settings/addresses").status_code == 400
