"""`purchaseshare parse --json` (CONTRACT.md): one JSON line per input, in order, exit 0; 2 on usage error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from purchaseshare.cli import app
from tests.helpers import ROOT

ORDER = (b"From: Shop <orders@shop.example>\r\nSubject: Your order confirmation\r\n"
         b"Date: Tue, 07 May 2019 10:00:00 +0000\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
         b"<html><body><table><tr><td>Widget deluxe</td><td>$10.00</td></tr>"
         b"<tr><td>Order Total</td><td>$10.00</td></tr></table></body></html>\r\n")
NEWSLETTER = (b"From: news@shop.example\r\nSubject: Weekly deals: 20% off\r\n\r\n"
              b"Big sale this week. Unsubscribe here.\r\n")


@pytest.fixture
def inputs(tmp_path: Path) -> list[str]:
    (tmp_path / "order.eml").write_bytes(ORDER)
    (tmp_path / "news.eml").write_bytes(NEWSLETTER)
    (tmp_path / "empty.eml").write_bytes(b"")
    (tmp_path / "body.html").write_bytes(b"<html><body><p>Thank you for your order</p></body></html>")
    (tmp_path / "dir").mkdir()
    names = ["order.eml", "missing.eml", "news.eml", "dir", "empty.eml", "body.html", "order.eml"]
    return [str(tmp_path / name) for name in names]


def check_lines(stdout: str, paths: list[str]) -> list[dict]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == len(paths), stdout
    objects = [json.loads(line) for line in lines]
    assert [o["source"] for o in objects] == paths
    for obj in objects:
        assert obj["status"] in ("purchase", "not_purchase", "unparsed", "error")
        if obj["status"] == "error":
            assert obj["error"]
    by_name = {Path(o["source"]).name: o for o in objects}
    assert by_name["missing.eml"]["status"] == "error"
    assert by_name["dir"]["status"] == "error"
    assert by_name["empty.eml"]["status"] == "error"
    assert by_name["order.eml"]["kind"] == "order"
    assert by_name["order.eml"]["status"] in ("purchase", "unparsed")
    assert by_name["news.eml"]["status"] == "not_purchase"
    return objects


def test_parse_json_in_process(inputs):
    result = CliRunner().invoke(app, ["parse", "--json", *inputs])
    assert result.exit_code == 0, result.output
    check_lines(result.stdout, inputs)


def test_parse_without_paths_is_a_usage_error():
    result = CliRunner().invoke(app, ["parse", "--json"])
    assert result.exit_code == 2


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "purchaseshare"
    return [str(script)] if script.exists() else [sys.executable, "-m", "purchaseshare.cli"]


def test_console_script_parse_json(inputs):
    done = subprocess.run([*_console_script(), "parse", *inputs, "--json"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    check_lines(done.stdout, inputs)


def test_console_script_usage_error():
    done = subprocess.run([*_console_script(), "parse", "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stdout == ""


def test_no_merchant_parsers_reads_a_known_shop_with_the_other_layers():
    fixture = sorted((ROOT / "fixtures" / "emails" / "steam").glob("*.eml"))[0]
    with_parsers = CliRunner().invoke(app, ["parse", "--json", str(fixture)])
    without = CliRunner().invoke(app, ["parse", "--json", "--no-merchant-parsers", str(fixture)])
    assert with_parsers.exit_code == 0 and without.exit_code == 0, without.output
    assert json.loads(with_parsers.stdout)["parser"] == "merchant:steam"
    assert json.loads(without.stdout)["parser"] in ("schema_org", "generic", None)



def test_explain_prints_the_candidates_and_the_choice(tmp_path: Path):
    path = tmp_path / "order.eml"
    path.write_bytes(ORDER)
    result = CliRunner().invoke(app, ["parse", "--explain", str(path)])
    assert result.exit_code == 0, result.output
    assert "10.00" in result.stdout and "total" in result.stdout.lower()
    assert "closed" in result.stdout.lower() or "abstain" in result.stdout.lower()


def test_explain_takes_one_file(tmp_path: Path):
    path = tmp_path / "order.eml"
    path.write_bytes(ORDER)
    result = CliRunner().invoke(app, ["parse", "--explain", str(path), str(path)])
    assert result.exit_code == 2
