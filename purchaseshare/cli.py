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
    no_merchant_parsers: Annotated[bool, typer.Option(
        "--no-merchant-parsers", help="Schema.org and generic layers only: what an unknown shop gets")] = False,
    explain: Annotated[bool, typer.Option(
        "--explain", help="One file: the generic reader's candidate amounts, scores and chosen sum")] = False,
) -> None:
    """Run the extraction pipeline on each file; never writes to the database."""
    from parsers.registry import ALL_MERCHANTS
    from purchaseshare.pipeline import parse_file

    disabled = ALL_MERCHANTS if no_merchant_parsers else frozenset()
    if explain:
        if len(paths) != 1:
            typer.echo("error: --explain reads exactly one file", err=True)
            raise typer.Exit(2)
        _explain(paths[0], disabled)
        return
    for path in paths:
        result = parse_file(str(path), disabled=disabled)
        if as_json:
            sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        else:
            _print_summary(result)
        sys.stdout.flush()


def _explain(path: Path, disabled: frozenset[str]) -> None:
    """What the generic reader saw in one email, then what the whole pipeline made of it."""
    from parsers.generic import explain
    from parsers.unwrap import unwrap
    from purchaseshare.pipeline import parse_file

    try:
        raw = path.read_bytes()
    except OSError as exc:
        typer.echo(f"error: cannot read {path}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(explain(unwrap(raw)))
    typer.echo("")
    _print_summary(parse_file(str(path), disabled=disabled))


@app.command("new-merchant")
def new_merchant(
    slug: Annotated[str, typer.Argument(help="The brand in lowercase snake_case, e.g. acme_outdoor")],
    source: Annotated[Path | None, typer.Option("--from", help="A real order email (.eml) from this merchant")] = None,
    from_template: Annotated[str | None, typer.Option(
        "--from-template", help="Start from the template owners taught for this sender domain")] = None,
    display_name: Annotated[str | None, typer.Option("--display-name", help="Brand as people know it")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be written; write nothing")] = False,
) -> None:
    """Scaffold a merchant: parser file, registry lines, scrubbed fixture and a draft golden to
    review (--from), or a parser that starts from a learned template's anchors (--from-template)."""
    from parsers.scaffold import ScaffoldError, scaffold, scaffold_from_template

    if (source is None) == (from_template is None):
        typer.echo("error: give exactly one of --from FILE.eml and --from-template DOMAIN", err=True)
        raise typer.Exit(2)
    try:
        if source is not None:
            result = scaffold(slug, source, display_name=display_name, dry_run=dry_run)
        else:
            row = _best_template(from_template or "")
            result = scaffold_from_template(slug, row.sender_domain, row.anchors, hits=row.hits,
                                            display_name=display_name, dry_run=dry_run)
    except ScaffoldError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.summary())


def _best_template(domain: str):
    """The sender's most confirmed live template (most hits), or exit with a message."""
    from sqlmodel import col, select

    from purchaseshare.config import get_settings
    from purchaseshare.db import session_scope
    from purchaseshare.models import Template

    with session_scope(get_settings()) as session:
        row = session.exec(select(Template).where(Template.sender_domain == domain.lower(),
                                                  Template.retired == False)  # noqa: E712
                           .order_by(col(Template.hits).desc())).first()
    if row is None:
        typer.echo(f"error: no learned template for {domain} (see `purchaseshare templates`)", err=True)
        raise typer.Exit(1)
    return row


@app.command()
def templates() -> None:
    """List the layouts learned from owners' corrections: domain, users, hits, misses, state."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from purchaseshare.config import get_settings
    from purchaseshare.db import session_scope
    from purchaseshare.learning import SHARED_AT
    from purchaseshare.models import Template, TemplateTeacher

    with session_scope(get_settings()) as session:
        teachers = dict(session.exec(select(TemplateTeacher.template_id, func.count())
                                     .group_by(col(TemplateTeacher.template_id))).all())
        rows = session.exec(select(Template).order_by(Template.sender_domain, col(Template.hits).desc())).all()
        if not rows:
            typer.echo("no learned templates yet (an owner's correction on a generic reading teaches one)")
            return
        typer.echo(f"{'id':>5}  {'sender domain':<32}{'signature':<20}{'users':>6}{'hits':>6}{'misses':>7}  state")
        for row in rows:
            users = teachers.get(row.id, 0)
            state = "retired" if row.retired else ("shared" if users >= SHARED_AT else "private")
            typer.echo(f"{row.id:>5}  {row.sender_domain:<32}{row.signature[:17] + '...':<20}{users:>6}"
                       f"{row.hits:>6}{row.misses:>7}  {state}")


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (alembic; also done by every command that needs it)."""
    from purchaseshare.db import migrate as run_migrations

    engine = run_migrations()
    typer.echo(f"database at {engine.url.render_as_string(hide_password=True)} is up to date")


user_app = typer.Typer(help="Manage users (operators).", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    handle: Annotated[str, typer.Argument(help="The public handle, e.g. alice")],
    email: Annotated[str | None, typer.Option(help="Account email (login, replies)")] = None,
    sender: Annotated[list[str] | None, typer.Option(help="A verified sender address (repeatable)")] = None,
) -> None:
    """Create a user; prints the personal forwarding address."""
    from purchaseshare.db import session_scope
    from purchaseshare.users import UserError, add_sender_address, create_user

    settings = _ready()
    with session_scope(settings) as session:
        try:
            user = create_user(session, handle, email=email)
            for address in sender or []:
                add_sender_address(session, user, address, verified=True)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        session.commit()
        typer.echo(f"{user.handle}: forward receipts to {settings.forwarding_address(user.forwarding_token)}")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Raw email files (.eml)")],
    user: Annotated[str, typer.Option("--user", help="Handle of the user the emails belong to")],
) -> None:
    """Store each email for USER and run it through the same queue as IMAP mail."""
    from purchaseshare.db import session_scope
    from purchaseshare.mailstore import store_raw
    from purchaseshare.models import RawEmail
    from purchaseshare.users import get_by_handle
    from workers.actors import enqueue_parse
    from workers.broker import IN_PROCESS, start_in_process_worker, stop_in_process_worker, wait_in_process

    settings = _ready()
    stored: list[tuple[Path, int | None, str]] = []
    with session_scope(settings) as session:
        owner = get_by_handle(session, user)
        if owner is None:
            typer.echo(f"error: no user with the handle {user!r} (create one: purchaseshare user add {user})", err=True)
            raise typer.Exit(2)
        for path in paths:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                stored.append((path, None, f"error: cannot read file: {exc.strerror or exc}"))
                continue
            # De-duplicated among this user's emails only (never matched with another account's).
            result = store_raw(session, raw, source=f"file:{path.name}", user_id=owner.id, attributed_by="cli")
            stored.append((path, result.raw_email.id, "" if result.created else "duplicate of an email already stored"))
        start_in_process_worker()
        enqueue_parse(session, [raw_id for _, raw_id, _ in stored if raw_id is not None])
    wait_in_process()
    with session_scope(settings) as session:
        for path, raw_id, note in stored:
            row = session.get(RawEmail, raw_id) if raw_id is not None else None
            if row is None:
                typer.echo(f"{path}: {note}")
                continue
            status = row.status if IN_PROCESS or row.status != "received" else "queued"
            detail = f" purchase #{row.purchase_id}" if row.purchase_id else ""
            why = f" ({row.reason})" if row.reason and status not in ("parsed",) else ""
            extra = f" [{note}]" if note else ""
            typer.echo(f"{path}: {status}{detail}{why}{extra}")
    stop_in_process_worker()


@app.command()
def worker(
    processes: Annotated[int, typer.Option(help="Worker processes")] = 2,
    threads: Annotated[int, typer.Option(help="Threads per process")] = 4,
) -> None:
    """Run dramatiq workers on REDIS_URL, restarted if they die (without REDIS_URL, actors run inside
    demo/serve/ingest)."""
    from purchaseshare.config import get_settings
    from purchaseshare.db import migrate as run_migrations
    from workers.supervisor import supervise

    settings = get_settings()
    if not settings.redis_url:
        typer.echo("error: REDIS_URL is not set; without it the actors run in-process (demo, serve, ingest)", err=True)
        raise typer.Exit(2)
    run_migrations(settings)
    raise typer.Exit(supervise(processes, threads))


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="Fetch what is there, then exit")] = False,
) -> None:
    """Fetch mail from IMAP_URL (IDLE when the server has it), store it, queue it. Without REDIS_URL
    the actors run in this process too."""
    from purchaseshare.config import get_settings
    from purchaseshare.db import migrate as run_migrations
    from workers.broker import start_in_process_worker, stop_in_process_worker, wait_in_process
    from workers.imap_poller import run_poller

    settings = get_settings()
    if not settings.imap_url:
        typer.echo("error: IMAP_URL is not set (e.g. imaps://user:pass@host:993/INBOX)", err=True)
        raise typer.Exit(2)
    run_migrations(settings)
    start_in_process_worker()  # no-op with REDIS_URL: `purchaseshare worker` runs them
    try:
        run_poller(settings, once=once)
        wait_in_process()  # --once: what was fetched is parsed before the command returns
    finally:
        stop_in_process_worker()


@app.command()
def reparse(
    merchant: Annotated[str | None, typer.Option("--merchant", help="Only this merchant's emails (parser slug)")] = None,
) -> None:
    """Parse stored emails again after a parser changed (the owner's choices are kept)."""
    from rich.progress import Progress

    from purchaseshare.db import session_scope
    from purchaseshare.reparse import select_for_reparse
    from workers.actors import reparse_email
    from workers.broker import IN_PROCESS, start_in_process_worker, stop_in_process_worker, wait_in_process

    settings = _ready()
    with session_scope(settings) as session:
        try:
            ids = select_for_reparse(session, merchant)
        except KeyError:
            typer.echo(f"error: no merchant parser {merchant!r}", err=True)
            raise typer.Exit(2) from None
    start_in_process_worker()
    batch = 25
    with Progress(transient=False) as progress:
        task = progress.add_task("reparsing" if IN_PROCESS else "queueing", total=len(ids))
        for start in range(0, len(ids), batch):
            for raw_id in ids[start:start + batch]:
                reparse_email.send(raw_id)
            wait_in_process()
            progress.advance(task, len(ids[start:start + batch]))
    stop_in_process_worker()
    typer.echo(f"{len(ids)} emails {'parsed again' if IN_PROCESS else 'queued for the workers'}")


@app.command()
def purge() -> None:
    """Apply the raw-mail retention now (drops raw bytes N days after a successful parse)."""
    from purchaseshare.db import session_scope
    from purchaseshare.processing import purge_expired_raw

    settings = _ready()
    with session_scope(settings) as session:
        typer.echo(f"purged the raw bytes of {purge_expired_raw(session, settings)} emails")


@app.command()
def images() -> None:
    """Fetch the images of shared items and avatars never stored (once after an upgrade, or
    after the queue was down when they were shared)."""
    from workers.actors import queue_missing_images
    from workers.broker import IN_PROCESS, start_in_process_worker, stop_in_process_worker, wait_in_process

    _ready()
    start_in_process_worker()
    try:
        count = queue_missing_images()
        wait_in_process()
    finally:
        stop_in_process_worker()
    typer.echo(f"{count} images {'fetched' if IN_PROCESS else 'queued for the workers'}")


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Where the demo keeps its SQLite database, secret key and drop folder "
        "(default: PURCHASESHARE_DATA_DIR or ./purchaseshare-data)")] = None,
) -> None:
    """Everything in one process: SQLite, in-process worker, sample data, a drop folder, the web app."""
    import uvicorn

    from purchaseshare.demo import DropFolderWatcher, banner, prepare_environment, seed

    shown = "localhost" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    # Before the broker is imported: no Redis, this data dir, links to where it is served.
    settings = prepare_environment(data_dir, base_url=f"http://{shown}:{port}")
    typer.echo(f"preparing the demo in {settings.data_dir.resolve()} (sample emails go through the queue)...")
    info = seed(settings)
    from web.app import create_app
    from workers.broker import stop_in_process_worker

    watcher = DropFolderWatcher(settings, info.drop_dir)
    watcher.start()
    typer.echo(banner(info, host, port))
    sys.stdout.flush()
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning",  # returns on Ctrl-C
                    proxy_headers=False)  # nothing in front of the demo: no X-Forwarded-For believed
    except KeyboardInterrupt:  # a second Ctrl-C during the graceful shutdown
        pass
    finally:
        watcher.stop()
        stop_in_process_worker()
    typer.echo("demo stopped")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Web server processes")] = 1,
    max_connections: Annotated[int, typer.Option(
        "--max-connections", help="Per process, open connections beyond which uvicorn itself answers 503 "
        "(a last bound on memory; the app sheds load politely well before it)")] = 4096,
) -> None:
    """Production: migrate, then serve the web app on DATABASE_URL / REDIS_URL (SECRET_KEY required)."""
    import os

    import uvicorn

    from purchaseshare.config import get_settings
    from purchaseshare.db import migrate as run_migrations

    if not os.environ.get("SECRET_KEY", "").strip():
        # A random per-process key would log everyone out on restart and differ between workers.
        typer.echo("error: SECRET_KEY is not set. Set it to a long random value kept across restarts, e.g.\n"
                   "  export SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')", err=True)
        raise typer.Exit(2)
    # Production is served over HTTPS: Secure session cookies and a checked Host header unless the
    # operator says otherwise (PURCHASESHARE_SECURE_COOKIES=false for a plain-http setup).
    os.environ.setdefault("PURCHASESHARE_SECURE_COOKIES", "true")
    os.environ.setdefault("PURCHASESHARE_CHECK_HOST", "true")
    settings = get_settings()
    engine = run_migrations(settings)
    where = engine.url.render_as_string(hide_password=True)
    queue = "Redis" if settings.redis_url else "in-process worker in each web process (no REDIS_URL)"
    typer.echo(f"serving on http://{host}:{port} with {workers} process(es); database {where}; queue: {queue}")
    # The factory builds the app inside each worker process; it runs the actors in-process only
    # when REDIS_URL is unset (start_in_process_worker is a no-op with a real broker).
    # X-Forwarded-* only from the configured proxies: by default nobody can choose the client address
    # the rate limits count (uvicorn alone would trust 127.0.0.1).
    trusted = settings.trusted_proxies.strip()
    uvicorn.run("web.app:create_app", factory=True, host=host, port=port, workers=workers,
                proxy_headers=bool(trusted), forwarded_allow_ips=trusted or "", log_level="info",
                limit_concurrency=max_connections)


def _ready():
    """The settings from the environment, with the database schema brought up to date."""
    from purchaseshare.config import get_settings
    from purchaseshare.db import migrate

    settings = get_settings()
    migrate(settings)
    return settings


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
