"""A real SMTP server for the tests (run by tests/services/servers.py in its own process):
aiosmtpd speaking SMTP on a loopback port, relaying nothing. Every accepted message is written
to DIR/NNNNNN.json with its envelope (MAIL FROM as aiosmtpd reads it: "<>" for the null
path, RCPT TOs) and its bytes.
Answers can be scripted per recipient in DIR/script.json: {"addr@x": ["451 4.7.1 Try later"]}
answers the next RCPT TO for that address with the first line and drops it (later ones accept).

    python -m tests.services.smtp_sink PORT DIR
"""

from __future__ import annotations

import base64
import json
import signal
import sys
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = threading.Lock()

    def _scripted(self, address: str) -> str | None:
        script = self.folder / "script.json"
        with self.lock:
            if not script.exists():
                return None
            answers = json.loads(script.read_text())
            queue = answers.get(address.lower()) or []
            if not queue:
                return None
            answer = queue.pop(0)
            answers[address.lower()] = queue
            script.write_text(json.dumps(answers))
            return answer

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self._scripted(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            number = len(list(self.folder.glob("[0-9]*.json"))) + 1
            record = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                      "data": base64.b64encode(envelope.original_content or envelope.content).decode()}
            target = self.folder / f"{number:06d}.json"
            target.with_suffix(".tmp").write_text(json.dumps(record))
            target.with_suffix(".tmp").rename(target)  # readers never see half a file
        return f"250 2.0.0 Ok: queued as sink{number}"


def main() -> None:
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    controller = Controller(Sink(folder), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
