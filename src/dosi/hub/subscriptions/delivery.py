"""Sending one notification: HTTP(S) POST through pooled keep-alive connections.

A sender returns when the receiver acknowledged (a 2xx) and raises
`DeliveryFailed` otherwise; whether to try again is the outbox's decision,
helped by `retry` (a 4xx other than 408/429 will not get better by waiting).
"""

from __future__ import annotations

import asyncio

import aiohttp

MAX_RESPONSE_READ = 64 * 1024


class DeliveryFailed(Exception):
    def __init__(self, detail: str, *, retry: bool = True) -> None:
        super().__init__(detail)
        self.retry = retry


class HttpSender:
    """One aiohttp session for every HTTP endpoint: connections are pooled per host."""

    def __init__(self, *, per_host: int, total: int = 256) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=total, limit_per_host=per_host, keepalive_timeout=30
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def send(self, uri: str, body: bytes, headers: dict[str, str], timeout_s: float) -> None:
        try:
            async with self._session.post(
                uri,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                # Read (a bounded part of) the answer so the connection can be reused.
                await response.content.read(MAX_RESPONSE_READ)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        if not 200 <= status < 300:
            retry = status >= 500 or status in (408, 425, 429)
            raise DeliveryFailed(f"HTTP {status}", retry=retry)

    async def close(self) -> None:
        await self._session.close()
        await asyncio.sleep(0)  # let the connector finish closing its transports
