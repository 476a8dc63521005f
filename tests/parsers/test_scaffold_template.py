"""For developers (issue 14, point 7): `purchaseshare templates` lists the learned layouts, and
`purchaseshare new-merchant SLUG --from-template DOMAIN` starts a merchant parser from one."""

from __future__ import annotations

import json
import random
from pathlib import Path

from typer.testing import CliRunner

from parsers.scaffold import scaffold_from_template
from parsers.templates import learn
from parsers.unwrap import unwrap
from purchaseshare.cli import app
from purchaseshare.db import session_scope
from purchaseshare.models import Template, TemplateTeacher
from tests.parsers.test_scaffold import in_tree, registry_slugs, tree  # noqa: F401  (tree: a fixture)
from tests.parsers.test_templates import _order
from tests.web.conftest import make_user


def _anchors(seed: int) -> str:
    raw, truth = _order(random.Random(seed))
    template = learn(unwrap(raw), truth, "kalomi-goods.com").template
    assert template is not None
    return template.anchors_json()


def test_a_parser_started_from_a_template_reads_the_merchants_next_email(tree: Path):  # noqa: F811
    result = scaffold_from_template("kalomi_goods", "kalomi-goods.com", _anchors(1), hits=4, root=tree)
    source = (tree / "parsers" / "merchants" / "kalomi_goods.py").read_text()
    assert "class KalomiGoodsParser(MerchantParser):" in source and 'domains = ("kalomi-goods.com",)' in source
    imports, merchants = registry_slugs((tree / "parsers" / "registry.py").read_text())
    assert "kalomi_goods" in imports and imports == sorted(imports) and merchants == imports
    assert result.domains == ("kalomi-goods.com",)

    raw, truth = _order(random.Random(77))
    email = tree / "next.eml"
    email.write_bytes(raw)
    out = json.loads(in_tree(tree, "import json; from purchaseshare.pipeline import parse_file; "
                                   f"print(json.dumps(parse_file({str(email)!r}).to_json()))"))
    assert out["parser"] == "merchant:kalomi_goods"
    assert out["total"] == str(truth.total)
    assert [(i["name"], i["quantity"]) for i in out["items"]] == [(i.name, i.quantity) for i in truth.items]


def test_a_claimed_domain_is_refused(tree: Path):  # noqa: F811
    import pytest

    from parsers.scaffold import ScaffoldError

    with pytest.raises(ScaffoldError, match="already claimed"):
        scaffold_from_template("another_amazon", "amazon.com", _anchors(2), root=tree)


def test_the_cli_lists_templates_and_scaffolds_from_one(settings):
    runner = CliRunner()
    assert "no learned templates yet" in runner.invoke(app, ["templates"]).output
    alice, bob = make_user(settings, "alice"), make_user(settings, "bob")
    with session_scope(settings) as session:
        row = Template(sender_domain="kalomi-goods.com", signature="00c0ffee 0badf00d", anchors=_anchors(3), hits=7)
        session.add(row)
        session.flush()
        session.add(TemplateTeacher(template_id=row.id, user_id=alice.id))
        session.commit()
    listed = runner.invoke(app, ["templates"]).output
    assert "kalomi-goods.com" in listed and "private" in listed and " 7 " in listed
    with session_scope(settings) as session:
        session.add(TemplateTeacher(template_id=row.id, user_id=bob.id))
        session.commit()
    assert "shared" in runner.invoke(app, ["templates"]).output

    made = runner.invoke(app, ["new-merchant", "kalomi_goods", "--from-template", "kalomi-goods.com", "--dry-run"])
    assert made.exit_code == 0, made.output
    assert "would write parsers/merchants/kalomi_goods.py" in made.output
    missing = runner.invoke(app, ["new-merchant", "nobody_shop", "--from-template", "nobody.example"])
    assert missing.exit_code == 1 and "no learned template for nobody.example" in missing.output
    both = runner.invoke(app, ["new-merchant", "x_shop"])
    assert both.exit_code == 2 and "exactly one of" in both.output
