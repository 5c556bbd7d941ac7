"""Delivering what the outbox holds: one lane per subscription, retries with backoff.

A lane reads its subscription's queued rows from the store (the outbox on
disk is the queue: memory holds at most one window per lane), joins up to
`batch_max` of them into one notification, keeps up to `concurrency`
requests in flight, and deletes rows only once the receiver acknowledged
them. A failure sends the lane back to the first unacknowledged row after an
exponential backoff with jitter; other lanes carry on, so a slow or dead
receiver stalls only its own subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass

from dosi.hub.metrics import Metrics
from dosi.hub.store.events import EventStore, OutboxRow
from dosi.hub.subscriptions.delivery import DeliveryFailed, HttpSender
from dosi.hub.subscriptions.mqtt import MqttSender
from dosi.hub.subscriptions.registry import LiveSub, Registry
from dosi.hub.subscriptions.rendering import headers_for, notification_body
from dosi.hub.subscriptions.status import StatusBook
from dosi.ngsi.values import now_iso

log = logging.getLogger("dosi.notify")
BACKOFF_BASE_S = 0.05
MAX_BODY_BYTES = 4 * 1024 * 1024  # a notification stops growing past this
GIVE_UP_AFTER = 5  # attempts, for failures waiting will not cure (a 4xx)
IDLE_CHECK_S = 5.0


@dataclass(frozen=True)
class LaneConfig:
    batch_max: int
    concurrency: int
    timeout_s: float
    retry_max_s: float
    max_age_s: float = 0.0  # 0: undelivered changes are kept forever


class Dispatcher:
    """The lanes of every subscription with something to deliver."""

    def __init__(
        self,
        events: EventStore,
        registry: Registry,
        status: StatusBook,
        metrics: Metrics,
        config: LaneConfig,
    ) -> None:
        self.events = events
        self.registry = registry
        self.status = status
        self.metrics = metrics
        self.config = config
        self.http = HttpSender(per_host=max(8, config.concurrency * 4))
        self.mqtt = MqttSender()
        self._lanes: dict[tuple[str, str], Lane] = {}
        self.closed = asyncio.Event()

    @property
    def closing(self) -> bool:
        return self.closed.is_set()

    def poke(self, tenant: str, sub_id: str) -> None:
        """Rows were queued for, or something changed about, this subscription."""
        if self.closing:
            return
        lane = self._lanes.get((tenant, sub_id))
        if lane is None or lane.ending:
            # A lane that is winding down would miss this poke: its successor starts once
            # it is gone (so the two never deliver the same rows).
            lane = self._lanes[(tenant, sub_id)] = Lane(self, tenant, sub_id, lane)
        lane.wake.set()

    def lanes(self) -> int:
        return len(self._lanes)

    def _finished(self, lane: Lane) -> None:
        if self._lanes.get((lane.tenant, lane.sub_id)) is lane:
            del self._lanes[(lane.tenant, lane.sub_id)]

    async def close(self, timeout_s: float) -> None:
        """Let in-flight requests finish (up to `timeout_s`), then stop every lane."""
        self.closed.set()
        lanes = list(self._lanes.values())
        for lane in lanes:
            lane.wake.set()
        tasks = [lane.task for lane in lanes]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.http.close()
        await self.mqtt.close()


class Lane:
    def __init__(
        self, dispatcher: Dispatcher, tenant: str, sub_id: str, previous: Lane | None = None
    ) -> None:
        self.d = dispatcher
        self.tenant = tenant
        self.sub_id = sub_id
        self.wake = asyncio.Event()
        self.ending = False
        self._deletes: set[asyncio.Task[None]] = set()
        self.task = asyncio.create_task(self._run(previous), name=f"notify-lane-{sub_id}")
        self.task.add_done_callback(lambda _: dispatcher._finished(self))

    async def _run(self, previous: Lane | None) -> None:
        if previous is not None:
            with contextlib.suppress(BaseException):
                await previous.task
        after = 0  # rows up to this seq are delivered (or being deleted)
        failures = 0
        try:
            while not self.d.closing:
                live = self.d.registry.get(self.tenant, self.sub_id)
                if live is None:
                    return  # deleted: its rows went with it
                if not live.spec.active:
                    if not await self._idle():  # paused: rows wait on disk
                        return
                    continue
                self.wake.clear()
                window = self.d.config.batch_max * self.d.config.concurrency
                rows = await self.d.events.outbox_read(self.tenant, self.sub_id, after, window)
                rows = await self._expire(rows)
                if not rows:
                    if not await self._idle():
                        return  # nothing for a while: the lane ends, a poke restarts it
                    continue
                failed_at, retry = await self._deliver(live, rows)
                if failed_at is None:
                    after = rows[-1].seq
                    failures = 0
                    continue
                after = failed_at - 1
                failures += 1
                if not retry and failures >= GIVE_UP_AFTER:
                    await self._drop(rows, failed_at)
                    after, failures = 0, 0
                    continue
                await self._backoff(live, failures)
        finally:
            self.ending = True
            if self._deletes:
                await asyncio.gather(*self._deletes, return_exceptions=True)

    async def _idle(self) -> bool:
        """Wait for a poke; False if none came for a while."""
        try:
            await asyncio.wait_for(self.wake.wait(), IDLE_CHECK_S)
        except TimeoutError:
            return False
        return True

    async def _backoff(self, live: LiveSub, failures: int) -> None:
        ceiling = self.d.config.retry_max_s
        delay = min(ceiling, BACKOFF_BASE_S * 2 ** min(failures, 30))
        delay = delay / 2 + random.random() * delay / 2  # jitter: receivers see no stampede
        delay = max(delay, live.spec.endpoint.cooldown_s or 0.0)
        with contextlib.suppress(TimeoutError):
            # Stopping the hub cuts the wait short; pokes do not (the endpoint is still down).
            await asyncio.wait_for(self.d.closed.wait(), delay)

    async def _deliver(self, live: LiveSub, rows: list[OutboxRow]) -> tuple[int | None, bool]:
        """Send `rows` in up to `concurrency` notifications; (first failed seq, retry?)."""
        chunks = _chunks(rows, self.d.config.batch_max)
        results = await asyncio.gather(*(self._send(live, chunk) for chunk in chunks))
        done = [
            row.seq
            for chunk, ok in zip(chunks, results, strict=True)
            if ok is None
            for row in chunk
        ]
        failed = [(chunk[0].seq, ok) for chunk, ok in zip(chunks, results, strict=True) if ok]
        if done:
            if failed:
                await self.d.events.outbox_delete(self.tenant, done)
            else:  # nothing to re-read: let the delete commit in the background
                task = asyncio.create_task(self.d.events.outbox_delete(self.tenant, done))
                self._deletes.add(task)
                task.add_done_callback(self._deletes.discard)
        if not failed:
            return None, True
        first, error = min(failed, key=lambda f: f[0])
        assert error is not None
        return first, error.retry

    async def _send(self, live: LiveSub, chunk: list[OutboxRow]) -> DeliveryFailed | None:
        spec = live.spec
        endpoint = spec.endpoint
        now = now_iso()
        body = notification_body(
            live.id, endpoint.accept, live.context, [row.data for row in chunk], now
        )
        headers = headers_for(endpoint.accept, live.link_url, self.tenant, spec)
        timeout = endpoint.timeout_s or self.d.config.timeout_s
        try:
            if endpoint.scheme.startswith("mqtt"):
                await self.d.mqtt.send(
                    endpoint.uri,
                    body,
                    headers,
                    qos=int(endpoint.info("MQTT-QoS", "0")),
                    version=endpoint.info("MQTT-Version", "mqtt3.1.1"),
                    timeout_s=timeout,
                )
            else:
                await self.d.http.send(endpoint.uri, body, headers, timeout)
        except Exception as exc:
            if not isinstance(exc, DeliveryFailed):  # a failure nobody foresaw: never retried
                log.exception("notification could not be sent", extra={"subscription": live.id})
                exc = DeliveryFailed(f"{type(exc).__name__}: {exc}", retry=False)
            self.d.status.record(self.tenant, live.id, False, now)
            self.d.metrics.notifications_failed += 1
            log.info(
                "notification failed",
                extra={"subscription": live.id, "error": str(exc), "entities": len(chunk)},
            )
            return exc
        self.d.status.record(self.tenant, live.id, True, now)
        self.d.metrics.notifications_sent += 1
        self.d.metrics.notified_entities += len(chunk)
        return None

    async def _expire(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """Drop rows older than `max_age_s`: a receiver gone for good must not fill the disk."""
        max_age_s = self.d.config.max_age_s
        if not rows or max_age_s <= 0:
            return rows
        oldest_kept = time.time() * 1000 - max_age_s * 1000
        expired = [row.seq for row in rows if row.at < oldest_kept]
        if not expired:
            return rows
        log.warning(
            "undelivered notifications expired",
            extra={"subscription": self.sub_id, "entities": len(expired)},
        )
        self.d.metrics.notifications_expired += len(expired)
        await self.d.events.outbox_delete(self.tenant, expired)
        return [row for row in rows if row.at >= oldest_kept]

    async def _drop(self, rows: list[OutboxRow], first: int) -> None:
        """Give up on rows the receiver keeps refusing (a 4xx): they will never get through."""
        dropped = [row.seq for row in rows if row.seq >= first]
        log.warning(
            "notifications dropped after repeated refusals",
            extra={"subscription": self.sub_id, "entities": len(dropped)},
        )
        await self.d.events.outbox_delete(self.tenant, dropped)


def _chunks(rows: list[OutboxRow], batch_max: int) -> list[list[OutboxRow]]:
    chunks: list[list[OutboxRow]] = []
    current: list[OutboxRow] = []
    size = 0
    for row in rows:
        if current and (len(current) >= batch_max or size + len(row.data) > MAX_BODY_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(row)
        size += len(row.data) + 1
    if current:
        chunks.append(current)
    return chunks
