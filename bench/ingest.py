"""IMAP ingestion end to end against the raw IMAP fetch floor, measured in the same run.

    python -m bench.ingest [--messages 10000] [--corpus ../shared/corpus] [--timeout 1800]

Starts its own Dovecot and redis-server (tests/services/servers.py) and uses SQLite in a temp
data dir. The mailbox is filled with N messages written straight into Dovecot's Maildir: the
corpus's .eml files round-robin, each with its own Message-ID and a Delivered-To for one user's
plus-address (so every message is attributed and parsed, not quarantined).

- floor: a bare imapclient `FETCH RFC822` of all N messages, 100 per command (what any IMAP
  reader pays to get the bytes at all);
- end to end: `purchaseshare poll` + `python -m dramatiq workers.actors --processes 2` on the
  real Redis, timed from starting the poller until every raw email is in a final status.
Peak RSS (VmHWM) of the poller and of the worker processes is sampled as the mailbox is consumed.
The LAST line printed is one JSON object: {"messages", "fetch_per_s", "ingest_per_s", "ratio",
"peak_rss_mb", ...}; the issue's target is ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from email.utils import make_msgid
from pathlib import Path

from imapclient import IMAPClient

ROOT = Path(__file__).resolve().parent.parent
FETCH_BATCH = 100
CHECKPOINTS = (0.25, 0.5, 0.75, 1.0)


def corpus_emails(corpus: Path) -> list[bytes]:
    with open(corpus / "MANIFEST.tsv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["format"] == "eml"]
    emails = [(corpus / r["local_path"]).read_bytes() for r in rows]
    if not emails:
        raise SystemExit(f"no .eml emails listed in {corpus / 'MANIFEST.tsv'}")
    return emails


def delivered(raw: bytes, to: str, message_id: str) -> bytes:
    """The email as our MX would deliver it: Delivered-To first (above any older ones), and a
    Message-ID of its own."""
    from tests.mailcopies import with_headers  # tests/ is importable once main() put ROOT on sys.path

    return with_headers(raw, {"Delivered-To": to, "Message-ID": message_id}, keep={"Delivered-To"})


def fill_maildir(base: Path, user: str, emails: list[bytes], count: int, to: str) -> int:
    """Write `count` messages into the user's Maildir INBOX (new/); Dovecot indexes them on SELECT."""
    maildir = base / "mail" / user
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    total = 0
    stamp = int(time.time())
    for n in range(count):
        raw = delivered(emails[n % len(emails)], to, make_msgid(idstring=str(n), domain="bench.test"))
        (maildir / "new" / f"{stamp}.M{n}P{os.getpid()}.bench").write_bytes(raw)
        total += len(raw)
    subprocess.run(["chown", "-R", "dovecot:dovecot", str(base / "mail")], check=True)
    return total


def measure_floor(port: int, user: str, password: str) -> tuple[float, float, int, float]:
    """(seconds to index on first SELECT, seconds to FETCH RFC822 everything, messages, bytes)."""
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=600) as client:
        client.login(user, password)
        started = time.perf_counter()
        client.select_folder("INBOX")
        uids = client.search("ALL")
        index_s = time.perf_counter() - started
        # Mark them unseen again afterwards is not needed: the poller ignores \Seen.
        started = time.perf_counter()
        fetched_bytes = 0
        for i in range(0, len(uids), FETCH_BATCH):
            for data in client.fetch(uids[i:i + FETCH_BATCH], ["RFC822"]).values():
                fetched_bytes += len(data[b"RFC822"])
        fetch_s = time.perf_counter() - started
    return index_s, fetch_s, len(uids), fetched_bytes


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def db_progress(db: Path) -> tuple[int, int]:
    """(raw emails stored, of which still `received`)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        total, waiting = conn.execute(
            "SELECT count(*), coalesce(sum(status = 'received'), 0) FROM raw_email").fetchone()
    return int(total), int(waiting)


def wait_ready(log: Path, process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Until both dramatiq worker processes said they are ready."""
    deadline = time.monotonic() + timeout
    while log.read_bytes().count(b"ready for action") < 2:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the workers did not start; see {log}")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds of ingest")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, logs) for a look")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from tests.services.servers import dovecot_server, redis_server

    work = Path(tempfile.mkdtemp(prefix="ps-bench-ingest-"))
    data_dir = work / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "IMAP_URL")}
    env.update(PURCHASESHARE_DATA_DIR=str(data_dir), PURCHASESHARE_INBOX="receipts@purchaseshare.test",
               PYTHONUNBUFFERED="1")
    os.environ.update(env)
    for key in ("DATABASE_URL", "REDIS_URL", "IMAP_URL"):
        os.environ.pop(key, None)

    from purchaseshare.config import get_settings
    from purchaseshare.db import migrate, session_scope
    from purchaseshare.users import create_user

    settings = get_settings()
    migrate(settings)
    with session_scope(settings) as session:
        user = create_user(session, "bench")
        session.commit()
        to = settings.forwarding_address(user.forwarding_token)
    db = data_dir / "purchaseshare.db"

    emails = corpus_emails(args.corpus)
    result: dict = {"messages": args.messages}
    processes: list[subprocess.Popen] = []
    try:
        with dovecot_server() as dovecot, redis_server() as redis:
            started = time.perf_counter()
            result["mailbox_bytes"] = fill_maildir(dovecot.base, dovecot.user, emails, args.messages, to)
            result["fill_s"] = round(time.perf_counter() - started, 2)
            index_s, fetch_s, fetched, fetched_bytes = measure_floor(dovecot.port, dovecot.user, dovecot.password)
            if fetched != args.messages:
                raise SystemExit(f"Dovecot shows {fetched} messages, expected {args.messages}")
            result.update(index_s=round(index_s, 2), fetch_s=round(fetch_s, 2),
                          fetch_per_s=round(fetched / fetch_s, 1),
                          fetch_mb_per_s=round(fetched_bytes / fetch_s / 1e6, 1))
            print(f"floor: FETCH RFC822 of {fetched} messages ({fetched_bytes / 1e6:.0f} MB) in {fetch_s:.2f}s "
                  f"= {fetched / fetch_s:.0f}/s (first SELECT indexed them in {index_s:.2f}s)", flush=True)

            run_env = {**env, "REDIS_URL": redis.url, "IMAP_URL": dovecot.url}
            logs = work / "logs"
            logs.mkdir()
            with open(logs / "workers.out", "wb") as out:
                workers = subprocess.Popen(
                    [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "2", "--threads", "2"],
                    cwd=ROOT, env=run_env, stdout=out, stderr=subprocess.STDOUT)
            processes.append(workers)
            wait_ready(logs / "workers.out", workers)  # their start-up is not ingestion
            boot_cpu = sum(cpu_s(pid) for pid in descendants(workers.pid))  # imports, before any message
            result["load_avg_at_start"] = os.getloadavg()[0]  # a shared machine: how busy it was
            started = time.perf_counter()
            with open(logs / "poller.out", "wb") as out:
                poller = subprocess.Popen([sys.executable, "-m", "purchaseshare.cli", "poll"], cwd=ROOT,
                                          env=run_env, stdout=out, stderr=subprocess.STDOUT)
            processes.append(poller)
            samples: list[dict] = []
            checkpoints = list(CHECKPOINTS)
            deadline = started + args.timeout
            total = waiting = 0
            first_stored = all_stored = None
            while True:
                time.sleep(0.25)
                if poller.poll() is not None or workers.poll() is not None:
                    raise SystemExit(f"a process exited early; see {logs}")
                total, waiting = db_progress(db)
                now = time.perf_counter() - started
                if first_stored is None and total:
                    first_stored = now
                if all_stored is None and total >= args.messages:
                    all_stored = now
                while checkpoints and total >= checkpoints[0] * args.messages:
                    worker_pids = descendants(workers.pid)
                    samples.append({
                        "stored": total, "final": total - waiting,
                        "at_s": round(time.perf_counter() - started, 1),
                        "poller_hwm_mb": rss_mb(poller.pid),
                        "workers_hwm_mb": [rss_mb(pid) for pid in worker_pids],
                    })
                    checkpoints.pop(0)
                if total >= args.messages and waiting == 0:
                    break
                if time.perf_counter() > deadline:
                    raise SystemExit(f"timed out: {total} stored, {waiting} still waiting after {args.timeout}s")
            ingest_s = time.perf_counter() - started
            worker_pids = descendants(workers.pid)
            peak = {"poller": rss_mb(poller.pid), "workers": max((rss_mb(p) for p in worker_pids), default=0.0),
                    "workers_master": rss_mb(workers.pid)}
            samples.append({"stored": total, "final": total - waiting, "at_s": round(ingest_s, 1),
                            "poller_hwm_mb": peak["poller"],
                            "workers_hwm_mb": [rss_mb(pid) for pid in worker_pids]})
            # Where the CPU went, per message: the poller (IMAP -> commit -> queue -> MOVE) against
            # the workers (attribution, the parse pipeline, the purchase rows).
            cpu = {"poller": cpu_s(poller.pid), "workers": sum(cpu_s(pid) for pid in worker_pids)}
            result["load_avg_at_end"] = os.getloadavg()[0]
            with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False) as client:
                client.login(dovecot.user, dovecot.password)
                left = client.select_folder("INBOX", readonly=True)[b"EXISTS"]
                processed = client.select_folder("Processed", readonly=True)[b"EXISTS"]
            for process in processes:
                stop_process(process)
            with sqlite3.connect(db) as conn:
                statuses = dict(conn.execute("SELECT status, count(*) FROM raw_email GROUP BY status").fetchall())
                purchases = conn.execute("SELECT count(*) FROM purchase").fetchone()[0]
            assert first_stored is not None and all_stored is not None
            result.update(
                poller_startup_s=round(first_stored, 2), all_stored_s=round(all_stored, 2),
                # the poller alone: IMAP -> committed + queued + moved, once it is up
                store_per_s=round(args.messages / max(all_stored - first_stored, 1e-9), 1),
                # end to end once the poller is up (ingest_per_s below counts its start-up too)
                steady_ingest_per_s=round(args.messages / max(ingest_s - first_stored, 1e-9), 1),
                ingest_s=round(ingest_s, 2), ingest_per_s=round(args.messages / ingest_s, 1),
                ratio=round((args.messages / ingest_s) / (fetched / fetch_s), 3),
                peak_rss_mb=peak, rss_samples=samples,
                cpu_ms_per_message={k: round(v * 1000 / args.messages, 2) for k, v in cpu.items()},
                # the same without the worker processes' start-up (imports), which N messages amortize
                workers_cpu_ms_per_message_after_boot=round((cpu["workers"] - boot_cpu) * 1000 / args.messages, 2),
                statuses=statuses, purchases=purchases,
                inbox_left=left, processed_folder=processed, corpus_emails=len(emails),
            )
            print(f"end to end: {args.messages} messages in {ingest_s:.1f}s = {args.messages / ingest_s:.0f}/s "
                  f"(statuses {statuses}, {purchases} purchases, INBOX left {left}, Processed {processed}); "
                  f"CPU per message: poller {cpu['poller'] * 1000 / args.messages:.1f} ms, "
                  f"workers {cpu['workers'] * 1000 / args.messages:.1f} ms "
                  f"({(cpu['workers'] - boot_cpu) * 1000 / args.messages:.1f} ms after their start-up); "
                  f"load average {result['load_avg_at_start']:.2f} at start, {result['load_avg_at_end']:.2f} at end")
            for sample in samples:
                print(f"  at {sample['at_s']:>7}s stored {sample['stored']:>6} final {sample['final']:>6}  "
                      f"poller peak {sample['poller_hwm_mb']} MB, workers peak {sample['workers_hwm_mb']} MB")
    finally:
        for process in processes:
            stop_process(process)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
