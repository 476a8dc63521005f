"""IMAP ingestion end to end against the raw IMAP fetch floor and this machine's limit, measured in
the same run, with 1 and then 2 worker processes.

    python -m bench.ingest [--messages 10000] [--corpus ../shared/corpus] [--postgres] [--processes 1,2]

Starts its own Dovecot and redis-server (tests/services/servers.py) and uses SQLite in a temp data
dir, or with --postgres a private throwaway PostgreSQL server (tests/services/servers.py's, as
bench.mix --postgres). For each worker-process count (--processes, default 1 then 2) the mailbox
is filled with N NEW messages written straight into Dovecot's Maildir (the corpus's .eml files
round-robin, each with its own Message-ID and a Delivered-To for one user's plus-address, so every
message is attributed and parsed, not quarantined) and a fresh database is used:

- floor: a bare imapclient `FETCH RFC822` of all N messages, 100 per command (what any IMAP
  reader pays to get the bytes at all);
- end to end: `purchaseshare poll` + `python -m dramatiq workers.actors --processes P --threads 2`
  on the real Redis, timed from starting the poller until every raw email is in a final status;
- the limit of this machine for the same work: cores x 1000 / (poller CPU ms + parse CPU ms per
  message), the poller's CPU measured in the run, the parse's by running the parse pipeline
  in this process over the SAME messages (each distinct email of the mix, weighted by how often
  it occurs), CPU time (time.process_time). `efficiency` = end-to-end rate / that limit;
  `cpu_efficiency` = (poller + parse CPU ms) / (poller + workers CPU ms) per message, the same
  ratio from CPU alone, which other load on a shared machine does not move.
Peak RSS (VmHWM) of the poller and of the worker processes is sampled as the mailbox is consumed.
The LAST line printed is one JSON object: {"messages", "fetch_per_s", "ingest_per_s", "ratio",
"efficiency", "peak_rss_mb", "scale_out", ...}; its top-level figures are the run with the most
worker processes (2 by default, as the bench always ran), `scale_out` has every run and the growth.
The user's storage quota is lifted for the run (10 000 corpus emails are ~670 MB, over the
500 MB default: the last quarter would be refused unread).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import make_msgid
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import Engine, text

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


def fill_maildir(base: Path, user: str, emails: list[bytes], count: int, to: str, tag: str = "") -> int:
    """Write `count` messages into the user's Maildir INBOX (new/); Dovecot indexes them on SELECT."""
    maildir = base / "mail" / user
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    total = 0
    stamp = int(time.time())
    for n in range(count):
        raw = delivered(emails[n % len(emails)], to, make_msgid(idstring=f"{tag}{n}", domain="bench.test"))
        (maildir / "new" / f"{stamp}.M{n}P{os.getpid()}{tag}.bench").write_bytes(raw)
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


def processed_count(dovecot) -> int:
    """Messages in the Processed folder (0 before the poller created it)."""
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False) as client:
        client.login(dovecot.user, dovecot.password)
        if not client.folder_exists("Processed"):
            return 0
        return int(client.select_folder("Processed", readonly=True)[b"EXISTS"])


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


def wait_ready(log: Path, process: subprocess.Popen, processes: int, timeout: float = 180.0) -> None:
    """Until every dramatiq worker process said it is ready."""
    deadline = time.monotonic() + timeout
    while log.read_bytes().count(b"ready for action") < processes:
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


def db_progress(engine: Engine) -> tuple[int, int]:
    """(raw emails stored, of which still `received`)."""
    with engine.connect() as conn:
        total, waiting = conn.execute(text(
            "SELECT count(*), coalesce(sum(CASE WHEN status = 'received' THEN 1 ELSE 0 END), 0) FROM raw_email")).one()
    return int(total), int(waiting)


def parse_cpu_ms(raws: list[bytes], weights: list[int], repeats: int = 2) -> float:
    """CPU ms per message of the parse pipeline alone (merchant parsers on, as in the workers) over
    the mix: each distinct email parsed `repeats` times after a warm-up pass, weighted by how often
    the mix has it."""
    from purchaseshare import pipeline

    for raw in raws:  # warm-up: lazy imports, caches (a worker has them after its first emails)
        pipeline.run(raw, source="bench")
    total = 0.0
    for raw, weight in zip(raws, weights, strict=True):
        started = time.process_time()
        for _ in range(repeats):
            pipeline.run(raw, source="bench")
        total += (time.process_time() - started) / repeats * weight
    return total * 1000 / sum(weights)


@dataclass
class Run:
    """One end-to-end run: its figures (JSON) and its poller CPU per message."""

    result: dict
    poller_ms: float


def run_once(*, processes: int, threads: int, messages: int, emails: list[bytes], dovecot, redis_url: str,
             database_url: str | None, work: Path, label: str, timeout: float) -> Run:
    """Fill the mailbox with `messages` new emails and ingest them with `processes` worker processes
    on a fresh database; the figures as the bench has always printed them."""
    from purchaseshare.config import Settings
    from purchaseshare.db import get_engine, migrate, session_scope
    from purchaseshare.users import create_user

    data_dir = work / f"data-{label}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "IMAP_URL")}
    env.update(PURCHASESHARE_DATA_DIR=str(data_dir), PURCHASESHARE_INBOX="receipts@purchaseshare.test",
               PURCHASESHARE_USER_QUOTA_MB="1000000", PYTHONUNBUFFERED="1")
    if database_url:
        env["DATABASE_URL"] = database_url
    settings = Settings(_env_file=None, PURCHASESHARE_DATA_DIR=data_dir, DATABASE_URL=database_url,
                        PURCHASESHARE_INBOX="receipts@purchaseshare.test")  # type: ignore[call-arg]
    migrate(settings)
    with session_scope(settings) as session:
        user = create_user(session, "bench")
        session.commit()
        to = settings.forwarding_address(user.forwarding_token)
    engine = get_engine(settings)

    result: dict = {"messages": messages, "processes": processes, "threads": threads}
    processes_started: list[subprocess.Popen] = []
    try:
        started = time.perf_counter()
        result["mailbox_bytes"] = fill_maildir(dovecot.base, dovecot.user, emails, messages, to, tag=label)
        result["fill_s"] = round(time.perf_counter() - started, 2)
        index_s, fetch_s, fetched, fetched_bytes = measure_floor(dovecot.port, dovecot.user, dovecot.password)
        if fetched != messages:
            raise SystemExit(f"Dovecot shows {fetched} messages, expected {messages}")
        result.update(index_s=round(index_s, 2), fetch_s=round(fetch_s, 2),
                      fetch_per_s=round(fetched / fetch_s, 1),
                      fetch_mb_per_s=round(fetched_bytes / fetch_s / 1e6, 1))
        print(f"[{label}] floor: FETCH RFC822 of {fetched} messages ({fetched_bytes / 1e6:.0f} MB) in {fetch_s:.2f}s "
              f"= {fetched / fetch_s:.0f}/s (first SELECT indexed them in {index_s:.2f}s)", flush=True)

        processed_before = processed_count(dovecot)  # an earlier run's messages are there already
        run_env = {**env, "REDIS_URL": redis_url, "IMAP_URL": dovecot.url}
        logs = work / f"logs-{label}"
        logs.mkdir()
        with open(logs / "workers.out", "wb") as out:
            workers = subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", str(processes),
                 "--threads", str(threads)], cwd=ROOT, env=run_env, stdout=out, stderr=subprocess.STDOUT)
        processes_started.append(workers)
        wait_ready(logs / "workers.out", workers, processes)  # their start-up is not ingestion
        boot_cpu = sum(cpu_s(pid) for pid in descendants(workers.pid))  # imports, before any message
        result["load_avg_at_start"] = os.getloadavg()[0]  # a shared machine: how busy it was
        started = time.perf_counter()
        with open(logs / "poller.out", "wb") as out:
            poller = subprocess.Popen([sys.executable, "-m", "purchaseshare.cli", "poll"], cwd=ROOT,
                                      env=run_env, stdout=out, stderr=subprocess.STDOUT)
        processes_started.append(poller)
        samples: list[dict] = []
        checkpoints = list(CHECKPOINTS)
        deadline = started + timeout
        total = waiting = 0
        first_stored = all_stored = None
        while True:
            time.sleep(0.25)
            if poller.poll() is not None or workers.poll() is not None:
                raise SystemExit(f"a process exited early; see {logs}")
            total, waiting = db_progress(engine)
            now = time.perf_counter() - started
            if first_stored is None and total:
                first_stored = now
            if all_stored is None and total >= messages:
                all_stored = now
            while checkpoints and total >= checkpoints[0] * messages:
                worker_pids = descendants(workers.pid)
                samples.append({
                    "stored": total, "final": total - waiting,
                    "at_s": round(time.perf_counter() - started, 1),
                    "poller_hwm_mb": rss_mb(poller.pid),
                    "workers_hwm_mb": [rss_mb(pid) for pid in worker_pids],
                })
                checkpoints.pop(0)
            if total >= messages and waiting == 0:
                break
            if time.perf_counter() > deadline:
                raise SystemExit(f"timed out: {total} stored, {waiting} still waiting after {timeout}s")
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
        processed = processed_count(dovecot) - processed_before
        for process in processes_started:
            stop_process(process)
        with engine.connect() as conn:
            statuses = dict(conn.execute(text("SELECT status, count(*) FROM raw_email GROUP BY status")).all())
            purchases = conn.execute(text("SELECT count(*) FROM purchase")).scalar_one()
        assert first_stored is not None and all_stored is not None
        result.update(
            poller_startup_s=round(first_stored, 2), all_stored_s=round(all_stored, 2),
            # the poller alone: IMAP -> committed + queued + moved, once it is up
            store_per_s=round(messages / max(all_stored - first_stored, 1e-9), 1),
            # end to end once the poller is up (ingest_per_s below counts its start-up too)
            steady_ingest_per_s=round(messages / max(ingest_s - first_stored, 1e-9), 1),
            ingest_s=round(ingest_s, 2), ingest_per_s=round(messages / ingest_s, 1),
            ratio=round((messages / ingest_s) / (fetched / fetch_s), 3),
            peak_rss_mb=peak, rss_samples=samples,
            cpu_ms_per_message={k: round(v * 1000 / messages, 2) for k, v in cpu.items()},
            # the same without the worker processes' start-up (imports), which N messages amortize
            workers_cpu_ms_per_message_after_boot=round((cpu["workers"] - boot_cpu) * 1000 / messages, 2),
            statuses=statuses, purchases=purchases,
            inbox_left=left, processed_folder=processed, corpus_emails=len(emails),
        )
        print(f"[{label}] end to end: {messages} messages in {ingest_s:.1f}s = {messages / ingest_s:.0f}/s "
              f"(statuses {statuses}, {purchases} purchases, INBOX left {left}, Processed {processed}); "
              f"CPU per message: poller {cpu['poller'] * 1000 / messages:.1f} ms, "
              f"workers {cpu['workers'] * 1000 / messages:.1f} ms "
              f"({(cpu['workers'] - boot_cpu) * 1000 / messages:.1f} ms after their start-up); "
              f"load average {result['load_avg_at_start']:.2f} at start, {result['load_avg_at_end']:.2f} at end",
              flush=True)
        for sample in samples:
            print(f"  at {sample['at_s']:>7}s stored {sample['stored']:>6} final {sample['final']:>6}  "
                  f"poller peak {sample['poller_hwm_mb']} MB, workers peak {sample['workers_hwm_mb']} MB")
        result["_to"] = to
    finally:
        for process in processes_started:
            stop_process(process)
        engine.dispose()
    return Run(result, cpu["poller"] * 1000 / messages)


@contextlib.contextmanager
def databases(postgres: bool) -> Iterator[Callable[[str], str | None]]:
    """A fresh database per run: None (SQLite in the run's data dir) or a new PostgreSQL database
    on one private server (tests/services/servers.py, as bench.mix --postgres)."""
    if not postgres:
        yield lambda _label: None
        return
    from tests.services.servers import postgres_server

    with postgres_server() as server:
        yield lambda label: server.create_database(f"bench_ingest_{label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds of ingest")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs) for a look")
    parser.add_argument("--postgres", action="store_true", help="a private throwaway PostgreSQL server, not SQLite")
    parser.add_argument("--processes", default="1,2", help="worker-process counts to run, in order (default 1,2)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.processes.split(",") if n.strip()]

    sys.path.insert(0, str(ROOT))
    from tests.services.servers import dovecot_server, redis_server

    work = Path(tempfile.mkdtemp(prefix="ps-bench-ingest-"))
    for key in ("DATABASE_URL", "REDIS_URL", "IMAP_URL"):
        os.environ.pop(key, None)
    emails = corpus_emails(args.corpus)
    runs: dict[int, Run] = {}
    try:
        with databases(args.postgres) as new_database, dovecot_server() as dovecot, redis_server() as redis:
            for processes in counts:
                label = f"p{processes}"
                runs[processes] = run_once(
                    processes=processes, threads=args.threads, messages=args.messages, emails=emails,
                    dovecot=dovecot, redis_url=redis.url, database_url=new_database(label), work=work,
                    label=label, timeout=args.timeout)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # The parse pipeline's CPU on the same mix (the messages as delivered, weighted as in the mix).
    main_run = runs[max(counts)]
    to = main_run.result.pop("_to")
    for run in runs.values():
        run.result.pop("_to", None)
    distinct = min(len(emails), args.messages)
    raws = [delivered(emails[n], to, make_msgid(idstring=str(n), domain="bench.test")) for n in range(distinct)]
    weights = [len(range(n, args.messages, len(emails))) for n in range(distinct)]
    parse_ms = parse_cpu_ms(raws, weights)
    cores = os.cpu_count() or 1
    scale: dict = {"processes": {}}
    for processes, run in runs.items():
        used = min(cores, processes)  # the poller has a core of its own only when there is one to spare
        limit = used * 1000 / (run.poller_ms + parse_ms)
        # The same ratio in CPU alone (what the run's rate would be on a machine running nothing else):
        # the CPU the limit counts per message over the CPU the poller and the workers really spent.
        spent = run.poller_ms + run.result["workers_cpu_ms_per_message_after_boot"]
        run.result.update(limit_per_s=round(limit, 1), efficiency=round(run.result["ingest_per_s"] / limit, 3),
                          cores=used, cpu_efficiency=round((run.poller_ms + parse_ms) / spent, 3))
        scale["processes"][str(processes)] = {k: run.result[k] for k in (
            "ingest_per_s", "steady_ingest_per_s", "efficiency", "cpu_efficiency", "limit_per_s", "cores",
            "cpu_ms_per_message",
            "workers_cpu_ms_per_message_after_boot", "load_avg_at_start", "load_avg_at_end", "statuses")}
    if 1 in runs and len(runs) > 1:
        scale["growth"] = round(main_run.result["ingest_per_s"] / runs[1].result["ingest_per_s"], 2)
    result = {**main_run.result, "database": "postgresql" if args.postgres else "sqlite",
              "parse_cpu_ms_per_message": round(parse_ms, 2), "poller_cpu_ms_per_message": round(main_run.poller_ms, 2),
              "scale_out": scale}
    for processes, run in runs.items():
        print(f"{processes} worker process(es): {run.result['ingest_per_s']}/s end to end, limit "
              f"{run.result['limit_per_s']}/s = {run.result['cores']} x 1000 / (poller {run.poller_ms:.2f} + parse "
              f"{parse_ms:.2f} ms), efficiency {run.result['efficiency']} (in CPU alone: {run.result['cpu_efficiency']})")
    if "growth" in scale:
        print(f"growth 1 -> {max(counts)} worker processes: {scale['growth']}x")
    print(json.dumps(result, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
