"""Moved to `contract.records`; this path stays for streams/app.py, sessionizer.py, replay.py."""

from contract.records import *  # noqa: F403
