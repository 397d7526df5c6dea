"""Moved to `contract.events`; this path stays for streams/app.py, sessionizer.py, replay.py."""

from contract.events import *  # noqa: F403
