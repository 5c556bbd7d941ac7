"""One what-if job in a process of its own: `python -m dosi.web.whatif_job SCENARIO EVENT HOURS`.

The web server starts it in a new session, so stopping a job (or the server) is one
signal to the whole process group: this process, `compare`'s two simulation
workers and its queue manager go together, and nothing is left running. Progress
and the result come back on stdout as marked JSON lines; anything else a simulator
prints there is ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import orjson

MARK = b"@dosi-whatif "


def emit(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(MARK + orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


def main(argv: Sequence[str]) -> int:
    from dosi.twin.whatif import compare, parse_what_if

    source, text, hours = argv
    try:
        event = parse_what_if(text)

        def progress(label: str, t: float, total: float) -> None:
            emit({"progress": label, "done": t / total if total else 1.0})

        result = compare(source, event, hours=float(hours), progress=progress)
    except Exception as exc:  # reported to the dashboard as the job's error, one line
        emit({"error": str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__})
        return 1
    emit({"baseline": result.baseline.kpis, "variant": result.variant.kpis})
    return 0


if __name__ == "__main__":  # `spawn` re-imports this module in the workers: keep the guard
    sys.exit(main(sys.argv[1:]))
