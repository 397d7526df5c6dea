"""Reading request bodies with hard caps: as sent, and after gzip decompression.

Decompression is bounded by the output size, never by trust in the input: a gzip bomb (a few
KB that expand to gigabytes) stops at `cap + 1` bytes of output and is refused.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable

_GZIP_WBITS = 16 + zlib.MAX_WBITS


class BodyTooLarge(Exception):
    """The body (or its decompressed form) exceeds the cap."""

    def __init__(self, cap: int, *, decompressed: bool, head: bytes = b"") -> None:
        what = "decompressed body" if decompressed else "body"
        super().__init__(f"{what} exceeds the limit of {cap} bytes")
        self.cap = cap
        self.decompressed = decompressed
        self.head = head  # what was read before the cap was passed (for a dead letter)


class InvalidGzip(Exception):
    """The body claims gzip encoding but is not valid gzip data."""


async def read_capped(chunks: AsyncIterable[bytes], cap: int) -> bytes:
    """Concatenate `chunks`, raising `BodyTooLarge` as soon as more than `cap` bytes arrive."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge(cap, decompressed=False, head=b"".join(parts))
        parts.append(chunk)
    return b"".join(parts)


def gunzip_capped(data: bytes, cap: int) -> bytes:
    """Decompress gzip `data` (one or more members), producing at most `cap` bytes.

    Raises `BodyTooLarge` when the output would exceed `cap` and `InvalidGzip` for corrupt or
    truncated input.
    """
    out = bytearray()
    pending = data
    while True:
        inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        try:
            while pending:
                # max_length >= 1 always (we raise once out exceeds cap); 0 would mean unlimited.
                out += inflater.decompress(pending, cap + 1 - len(out))
                if len(out) > cap:
                    raise BodyTooLarge(cap, decompressed=True)
                if inflater.eof:
                    break
                pending = inflater.unconsumed_tail
        except zlib.error as exc:
            raise InvalidGzip(f"body is not valid gzip: {exc}") from exc
        if not inflater.eof:
            raise InvalidGzip("body is not valid gzip: truncated stream")
        # Concatenated gzip members are legal (RFC 1952); anything else after the end is not.
        pending = inflater.unused_data
        if not pending:
            return bytes(out)
