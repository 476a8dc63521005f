"""Background work: dramatiq actors (workers/actors.py) and the IMAP poller (workers/imap_poller.py)."""
