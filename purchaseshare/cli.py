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


@app.command("new-merchant")
def new_merchant(
    slug: Annotated[str, typer.Argument(help="The brand in lowercase snake_case, e.g. acme_outdoor")],
    source: Annotated[Path, typer.Option("--from", help="A real order email (.eml) from this merchant")],
    display_name: Annotated[str | None, typer.Option("--display-name", help="Brand as people know it")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be written; write nothing")] = False,
) -> None:
    """Scaffold a merchant: parser file, registry lines, scrubbed fixture and a draft golden to review."""
    from parsers.scaffold import ScaffoldError, scaffold

    try:
        result = scaffold(slug, source, display_name=display_name, dry_run=dry_run)
    except ScaffoldError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.summary())


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
