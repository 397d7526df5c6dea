"""One playback session run end to end: the startup phases, then playback tick by tick.

Kept apart from `platform_stub.player` (the plan, the world and the state) so that the
phase modules can depend on those shapes without an import circle back to the driver.
"""

from __future__ import annotations

from collections.abc import Generator

from platform_stub.playback import Playback
from platform_stub.player import PlayerWorld, SessionPlan, SessionProgress
from platform_stub.startup import Session, startup

SessionEvents = Generator[tuple[int, str], None, None]


def play(plan: SessionPlan, world: PlayerWorld, state: SessionProgress) -> SessionEvents:
    """Simulate one session, yielding (event_ms, event_json) in time order.

    The startup phases (`platform_stub.startup`) run first; a session that reaches its
    first frame then plays tick by tick (`platform_stub.playback`). Everything is recorded
    in `state`; the generator returns when the session has ended.
    """
    session = Session(plan, world, state)
    started = yield from startup(session)
    if started is not None:
        t, link = started
        yield from Playback(session, t, link).run(t)
