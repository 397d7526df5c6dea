"""Moved to `contract.metrics`; this path stays for streams/sessionizer.py (s2-worker's file)."""

from contract.metrics import *  # noqa: F403
