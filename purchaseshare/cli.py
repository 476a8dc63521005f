"""The `purchaseshare` command line (typer). CONTRACT.md fixes `parse`, `ingest`, `demo`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="PurchaseShare: forwarded receipts in, purchases you choose to share out.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug output")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command()
def parse(
    paths: Annotated[list[Path], typer.Argument(help="Raw email files (.eml), or bare .html/.txt bodies")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per input (JSON Lines)")] = False,
) -> None:
    """Run the extraction pipeline on each file; never writes to the database."""
    from purchaseshare.pipeline import parse_file

    for path in paths:
        result = parse_file(str(path))
        if as_json:
            sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        else:
            _print_summary(result)
        sys.stdout.flush()


def _print_summary(result) -> None:
    from rich.console import Console

    console = Console()
    data = result.to_json()
    console.print(f"[bold]{data['source']}[/]: {data['status']} ({data['kind']}, {data['parser']})")
    if data["status"] == "purchase":
        console.print(f"  {data['merchant']['name']} {data['order_date']}: {data['total']} {data['currency']}")
        for item in data["items"]:
            console.print(f"  - {item['quantity']} x {item['name']} {item['line_total'] or ''}")
    for line in data["warnings"]:
        console.print(f"  [yellow]warning[/]: {line}")
    if data["error"] or data["reason"]:
        console.print(f"  {data['error'] or data['reason']}")


if __name__ == "__main__":  # pragma: no cover
    app()
