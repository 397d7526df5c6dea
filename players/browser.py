"""Drive the player page in the machine's Chromium (Playwright) and read its measurements."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
# Autoplay without a click, and no throttling of a page that is not in front.
CHROMIUM_ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
]


@dataclass(frozen=True)
class PlaySpec:
    """One playback session on the player page."""

    player: str  # hls | dash | video
    report: str  # sdk | cmcd | none
    token: str  # the segment server's session token (selects the fault)
    session_id: str
    member_id: str = ""
    title_id: str = "local-ladder"
    fast_fail: bool = False
    events_url: str = "/collector/v1/events"
    cmcd_url: str = "/collector/v1/cmcd"

    def url(self, base: str) -> str:
        """The page URL for this session on the segment server at `base`."""
        manifest = {"dash": "dash/manifest.mpd", "video": "plain.mp4"}.get(
            self.player, "hls/master.m3u8"
        )
        query = {
            "player": self.player,
            "report": self.report,
            "src": f"/m/{self.token}/{manifest}",
            "session": self.session_id,
            "member": self.member_id,
            "title": self.title_id,
            "events_url": self.events_url,
            "cmcd_url": self.cmcd_url,
            "fast_fail": "1" if self.fast_fail else "0",
        }
        return f"{base}/player.html?{urlencode(query)}"


async def _play(browser: Browser, base: str, spec: PlaySpec, timeout_s: float) -> dict[str, Any]:
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    try:
        await page.goto(spec.url(base))
        deadline = time.monotonic() + timeout_s
        done = "() => !!window.__measure"
        done += " && (window.__measure.ended || !!window.__measure.fatalErrorCode)"
        while not await page.evaluate(done):
            if time.monotonic() > deadline:
                state = await page.evaluate("() => window.__measure")
                raise TimeoutError(f"{spec} did not end in {timeout_s}s: {state} {console[-20:]}")
            await asyncio.sleep(0.25)
        # Let the players' own interval/state reports go out before the viewer "closes".
        await asyncio.sleep(2.5)
        await page.evaluate("() => window.__stop()")
        await asyncio.sleep(1.5)
        measure: dict[str, Any] = await page.evaluate("() => window.__measure")
        measure["console"] = console
        return measure
    finally:
        await context.close()


async def play_all(
    base: str,
    specs: list[PlaySpec],
    timeout_s: float = 90.0,
    parallel: bool = True,
    max_pages: int = 4,
) -> list[dict[str, Any]]:
    """Play every session (in parallel pages by default, at most `max_pages` at once);
    their measurements in order.

    Headless Chromium decodes each page's video in software. With nine pages at once on
    two cores, a throttled dash.js session once hit a decode error (MEDIA_ERR_DECODE) and
    never ended; fewer at once leave the decoders CPU."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            if parallel:
                pages = asyncio.Semaphore(max_pages)

                async def play(spec: PlaySpec) -> dict[str, Any]:
                    async with pages:
                        return await _play(browser, base, spec, timeout_s)

                return list(await asyncio.gather(*(play(s) for s in specs)))
            return [await _play(browser, base, s, timeout_s) for s in specs]
        finally:
            await browser.close()
