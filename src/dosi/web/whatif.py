"""What-if jobs for the dashboard: one at a time, progress while it runs, KPIs side by side.

A job is `dosi.twin.whatif.compare` (baseline and variant in two worker processes)
run by `dosi.web.whatif_job` in a session of its own: the server reads its progress
lines without blocking the event loop, and stopping it signals the whole process
group, so a job never outlives the server. Each job gets a private TMPDIR (the
simulators' scratch files) that is removed with it. Only the last few jobs are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from dosi.twin.kpi import KPI_LABELS, change
from dosi.web.errors import Busy
from dosi.web.metrics import WebMetrics
from dosi.web.whatif_job import MARK

RUNNER = (sys.executable, "-m", "dosi.web.whatif_job")
LINE_LIMIT = 1 << 20  # a result line is a few kB; anything longer is not ours
TERM_GRACE_S = 5.0


@dataclass
class Job:
    id: str
    event: str
    description: str
    hours: float
    status: Literal["running", "done", "failed"] = "running"
    progress: dict[str, float] = field(default_factory=lambda: {"baseline": 0.0, "variant": 0.0})
    kpis: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    wall_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "event": self.event,
            "description": self.description,
            "hours": self.hours,
            "progress": dict(self.progress),
            "kpis": self.kpis,
        }
        if self.error:
            out["error"] = self.error
        if self.wall_s is not None:
            out["wallSeconds"] = round(self.wall_s, 1)
        return out


def kpi_rows(baseline: dict[str, float], variant: dict[str, float]) -> list[dict[str, Any]]:
    """Both runs' KPIs, labelled, in the order of KPI_LABELS, with the change and its sign."""
    rows = []
    for key in [*KPI_LABELS, *sorted(set(baseline) - set(KPI_LABELS))]:
        if key not in baseline or key not in variant:
            continue
        kpi = KPI_LABELS.get(key)
        ratio, better = change(key, baseline[key], variant[key])
        rows.append(
            {
                "key": key,
                "en": kpi.en if kpi else key,
                "ko": kpi.ko if kpi else key,
                "unit": kpi.unit if kpi else "",
                "baseline": baseline[key],
                "variant": variant[key],
                "change": ratio,
                "better": better,
            }
        )
    return rows


class WhatIfJobs:
    def __init__(
        self,
        source: Path,
        *,
        keep: int = 10,
        metrics: WebMetrics | None = None,
        runner: Sequence[str] = RUNNER,
    ) -> None:
        self.source = source
        self.keep = keep
        self.metrics = metrics or WebMetrics()
        self.runner = tuple(runner)
        self._jobs: dict[str, Job] = {}
        self._task: asyncio.Task[None] | None = None
        self._current: Job | None = None
        self.process_group: int | None = None  # the running job's (its runner's pid)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def start(self, text: str, description: str, hours: float) -> Job:
        """Start a job (the event already checked); Busy while another one runs."""
        running = self._current
        if running is not None:
            raise Busy(f"what-if {running.id} ({running.event}) is still running; try again later")
        job = self._current = Job(secrets.token_hex(8), text, description, hours)
        self._jobs[job.id] = job
        finished = [j for j in self._jobs.values() if j.status != "running"]
        for old in finished[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[old.id]
        self.metrics.jobs["started"] += 1
        self.metrics.jobs_running = 1
        self._task = asyncio.create_task(self._run(job), name=f"whatif-{job.id}")
        return job

    async def close(self) -> None:
        """Stop a running job and its processes (server shutdown)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, job: Job) -> None:
        scratch = tempfile.mkdtemp(prefix="dosi-whatif-")
        process: asyncio.subprocess.Process | None = None
        outcome = "failed"
        try:
            process = await asyncio.create_subprocess_exec(
                *self.runner, str(self.source), job.event, repr(job.hours),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
                env={**os.environ, "TMPDIR": scratch}, limit=LINE_LIMIT,
            )  # fmt: skip
            self.process_group = process.pid
            assert process.stdout is not None and process.stderr is not None
            errors = asyncio.create_task(_tail(process.stderr))
            result: dict[str, Any] | None = None
            async for message in _messages(process.stdout):
                if "progress" in message and message["progress"] in job.progress:
                    done = message.get("done")
                    if isinstance(done, int | float):
                        job.progress[message["progress"]] = min(1.0, max(0.0, float(done)))
                elif "error" in message:
                    job.error = str(message["error"])[:500]
                elif isinstance(message.get("baseline"), dict):
                    result = message
            code = await process.wait()
            stderr = await errors
            if result is not None and code == 0:
                job.kpis = kpi_rows(result["baseline"], result.get("variant") or {})
                job.progress = {"baseline": 1.0, "variant": 1.0}
                outcome = "done"
            else:
                job.error = job.error or _last_line(stderr) or f"the run exited with code {code}"
        except asyncio.CancelledError:
            job.error, outcome = "stopped: the server shut down", "cancelled"
            raise
        except OSError as exc:
            job.error = f"cannot start the run: {exc}"
        finally:
            job.wall_s = time.monotonic() - job.started
            if process is not None:
                await _stop_group(process)
            self.process_group = None
            shutil.rmtree(scratch, ignore_errors=True)
            # Only now, with every process gone, may the next job start.
            job.status = "done" if outcome == "done" else "failed"
            self._current = None
            self.metrics.jobs[outcome] += 1
            self.metrics.jobs_running = 0


async def _messages(stream: asyncio.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """The runner's marked JSON lines; other output (a simulator's chatter) is skipped."""
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line over the limit: not one of ours, drop what is buffered
            await stream.read(LINE_LIMIT)
            continue
        if not line:
            return
        if line.startswith(MARK):
            with contextlib.suppress(orjson.JSONDecodeError):
                message = orjson.loads(line[len(MARK) :])
                if isinstance(message, dict):
                    yield message


async def _tail(stream: asyncio.StreamReader, keep: int = 4000) -> bytes:
    """Read a pipe to its end (so the child never blocks on it), keeping the last bytes."""
    tail = b""
    while chunk := await stream.read(65536):
        tail = (tail + chunk)[-keep:]
    return tail


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the job's process group, SIGKILL what is left after a grace period."""
    group = process.pid
    if process.returncode is None:
        _signal_group(group, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), TERM_GRACE_S)
        except TimeoutError:
            _signal_group(group, signal.SIGKILL)
            await process.wait()
    # The workers may outlive the runner by a moment (or be stuck): give them that moment.
    deadline = time.monotonic() + TERM_GRACE_S
    while _signal_group(group, 0) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, sig: int) -> bool:
    """Whether any process of the group was there to be signalled."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # only a zombie left that is not ours to reap
        return False
    return True
