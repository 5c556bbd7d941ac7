"""Group commit for the PostgreSQL store: queued apply() calls share transactions.

A few writer tasks take every queued call, up to MAX_GROUP_OPS mutations, and
run each tenant's share in one transaction (`write`, see postgres_write.py):
many small writes from many requests cost one round-trip chain instead of
one each. Callers are resolved only after the COMMIT. If PostgreSQL or the
plan refused a group (so it surely rolled back), each call runs again alone,
so that only the one at fault fails; if the connection failed, the outcome is
unknown and nothing is rerun.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg

from dosi.hub.store.base import Mutation, Outcome
from dosi.ngsi.errors import BadRequestData, InternalError, NgsiError

T = TypeVar("T")
log = logging.getLogger("dosi.hub.store")
MAX_GROUP_OPS = 4096  # mutations one group-commit transaction takes at most
RETRIES = 8
# Conflicts with concurrent transactions (another process creating the same id, a
# deadlock between inserts): the transaction is rerun from the start.
RETRYABLE = (
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)

# (tenant, ops, strict) -> outcomes, committed; strict when the ops are several calls'.
WriteFn = Callable[[str, Sequence[tuple[str, Mutation]], bool], Awaitable[list[Outcome]]]


async def transact(pool: asyncpg.Pool, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `fn` in a transaction; rerun it (it must be repeatable) on conflicts."""
    for attempt in range(RETRIES):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await fn(conn)
        except RETRYABLE:
            if attempt == RETRIES - 1:
                raise
            await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
    raise AssertionError("unreachable")


class _Job:
    __slots__ = ("future", "ops", "tenant")

    def __init__(self, tenant: str, ops: Sequence[tuple[str, Mutation]]) -> None:
        self.tenant = tenant
        self.ops = ops
        self.future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()


class GroupWriter:
    def __init__(self, write: WriteFn, writers: int) -> None:
        self._write = write
        self._count = max(1, writers)
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._accepting = True
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"dosi-pg-writer-{n}")
            for n in range(self._count)
        ]

    async def stop(self) -> None:
        """Finish every queued call, then stop (a graceful shutdown loses nothing)."""
        self._accepting = False
        for _ in self._tasks:
            self._queue.put_nowait(None)
        if self._tasks:
            await asyncio.gather(*self._tasks)
            self._tasks = []

    async def submit(self, tenant: str, ops: Sequence[tuple[str, Mutation]]) -> list[Outcome]:
        if not self._accepting:
            raise InternalError("the store is closed")
        job = _Job(tenant, ops)
        self._queue.put_nowait(job)
        return await job.future

    async def _loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            jobs = [first]
            size = len(first.ops)
            stop = False
            while size < MAX_GROUP_OPS:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
                size += len(nxt.ops)
            by_tenant: dict[str, list[_Job]] = {}
            for job in jobs:
                # A caller cancelled while its job waited in the queue gets nothing written
                # (as on SQLite); one cancelled later finds its write done.
                if not job.future.done():
                    by_tenant.setdefault(job.tenant, []).append(job)
            for tenant, group in by_tenant.items():
                await self._run_group(tenant, group)
            if stop:
                return

    async def _run_group(self, tenant: str, group: list[_Job]) -> None:
        alone = len(group) == 1
        try:
            outcomes = await self._write(tenant, [op for job in group for op in job.ops], not alone)
        except Exception as exc:
            if not alone and isinstance(exc, NgsiError | asyncpg.PostgresError):
                for job in group:
                    await self._run_group(tenant, [job])
                return
            for job in group:
                _resolve(job.future, error=as_ngsi(exc))
            return
        start = 0
        for job in group:
            end = start + len(job.ops)
            _resolve(job.future, outcomes[start:end])
            start = end


def _resolve(
    future: asyncio.Future[list[Outcome]],
    result: list[Outcome] | None = None,
    *,
    error: BaseException | None = None,
) -> None:
    if future.done():  # the caller went away; the write stands
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or [])


def as_ngsi(exc: BaseException) -> BaseException:
    if isinstance(exc, NgsiError):
        return exc
    if isinstance(
        exc, asyncpg.UntranslatableCharacterError | asyncpg.CharacterNotInRepertoireError
    ):
        return BadRequestData(f"this text cannot be stored: {exc}")
    log.error("write failed", exc_info=exc)
    return InternalError(f"storage failure: {type(exc).__name__}: {exc}")
