"""Whose turn it is to read a CMCD body: one body at a time per session, in `sn` order.

A report's events depend on its session's previous state, and players POST reports without
waiting for answers. So two bodies of one session in flight must not both read the same
state, and a body that overtook the report before it waits for that report (at most
`cmcd_reorder_wait_s`). Bodies of different sessions go on side by side: a turn lasts until
the body's events are in Kafka, and one turn for all sessions held every player behind one
Kafka round trip at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from ingest.cmcd_events import CmcdSessions


@dataclass
class _Session:
    turn: asyncio.Condition = field(default_factory=asyncio.Condition)
    users: int = 0  # bodies holding or awaiting the turn; forgotten at 0


class SessionTurns:
    """The turns of the sessions that have bodies in flight."""

    def __init__(self, sessions: CmcdSessions, wait_s: float) -> None:
        self.sessions = sessions
        self.wait_s = wait_s
        self._active: dict[str, _Session] = {}

    def __len__(self) -> int:
        return len(self._active)

    @asynccontextmanager
    async def turn(self, firsts: Mapping[str, int | None]) -> AsyncIterator[None]:
        """Hold the turn of every session in `firsts` (session -> the body's first `sn`
        there) until the block ends; commit the sessions' new state inside it.

        Turns are taken in sorted order, so two bodies never wait on each other for ever.
        """
        async with AsyncExitStack() as stack:
            for sid in sorted(firsts):
                turn = await stack.enter_async_context(self._hold(sid))
                sn = firsts[sid]
                if sn is not None:
                    await self._wait_for_earlier(turn, sid, sn)
            yield

    @asynccontextmanager
    async def _hold(self, sid: str) -> AsyncIterator[asyncio.Condition]:
        session = self._active.get(sid)
        if session is None:
            session = self._active[sid] = _Session()
        session.users += 1
        try:
            async with session.turn:
                try:
                    yield session.turn
                finally:
                    # The state may have moved on: a body waiting for it looks again.
                    session.turn.notify_all()
        finally:
            session.users -= 1
            if session.users == 0:
                del self._active[sid]

    async def _wait_for_earlier(self, turn: asyncio.Condition, sid: str, sn: int) -> None:
        """Until the session's report before `sn` is in, for at most `wait_s` (after that
        it counts as lost, and if it still comes it is dead-lettered as out of order)."""
        try:
            async with asyncio.timeout(self.wait_s):
                await turn.wait_for(lambda: sn <= self.sessions.get(sid).sns.newest + 1)
        except TimeoutError:
            pass
