"""Moved to `contract.deadletter`; this path stays for streams/app.py (s2-worker's file)."""

from contract.deadletter import *  # noqa: F403
