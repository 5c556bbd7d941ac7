"""EPANET 2.2's hydraulic toolkit, stepped one period at a time, through WNTR's binding.

WNTR's `ENepanet` opens the project and loads the library; the calls made every
hydraulic period (run, next, many node reads) go straight to the library with one
reusable ctypes buffer, because WNTR's wrapper logs every solver warning (a burst can
warn at each step) and lacks EN_setoption. Warnings are counted, not logged.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# EPANET 2.2 codes (epanet2_enums.h)
EMITTER = 3
DEMAND = 9
HEAD = 10
PRESSURE = 11  # for a tank: its water level
DEMANDDEFICIT = 27
FLOW = 8
STATUS = 11
SETTING = 12
HYDSTEP = 1
DEMANDMULT = 4
NODE_JUNCTION = 0
NODE_TANK = 2
LINK_PUMP = 2


class ToolkitError(RuntimeError):
    """EPANET refused a call (error code >= 100)."""


class Toolkit:
    """One open EPANET project, hydraulics initialised at t = 0, nothing saved to disk."""

    def __init__(self, inp: Path, report: Path) -> None:
        from wntr.epanet.toolkit import ENepanet

        self._en: Any = ENepanet(version=2.2)
        self._en.ENopen(str(inp), str(report), "")
        self._lib: Any = self._en.ENlib
        self._project: Any = self._en._project  # the EN_Project handle of the 2.2 API
        self._value = ctypes.c_double()
        self._ref = ctypes.byref(self._value)
        self._open = True
        self.warnings = 0  # solver warnings (unbalanced, negative pressures...) so far
        self._en.ENopenH()
        self._en.ENinitH(0)

    def _check(self, code: int, what: str) -> None:
        if code >= 100:
            raise ToolkitError(f"EPANET error {code} in {what}")
        if code:
            if not self.warnings:
                log.info("EPANET warning %d in %s (later warnings are only counted)", code, what)
            self.warnings += 1

    def node_index(self, name: str) -> int:
        return int(self._en.ENgetnodeindex(name))

    def link_index(self, name: str) -> int:
        return int(self._en.ENgetlinkindex(name))

    def node_type(self, index: int) -> int:
        return int(self._en.ENgetnodetype(index))

    def link_type(self, index: int) -> int:
        return int(self._en.ENgetlinktype(index))

    def node(self, index: int, code: int) -> float:
        self._check(self._lib.EN_getnodevalue(self._project, index, code, self._ref), "node")
        return float(self._value.value)

    def nodes(self, indices: Sequence[int], code: int) -> list[float]:
        """One property of many nodes (the per-period hot path)."""
        get, project, ref, value = self._lib.EN_getnodevalue, self._project, self._ref, self._value
        out: list[float] = []
        for index in indices:
            error = get(project, index, code, ref)
            if error:
                self._check(error, "nodes")
            out.append(value.value)
        return out

    def link(self, index: int, code: int) -> float:
        self._check(self._lib.EN_getlinkvalue(self._project, index, code, self._ref), "link")
        return float(self._value.value)

    def links(self, indices: Sequence[int], code: int) -> list[float]:
        return [self.link(i, code) for i in indices]

    def set_node(self, index: int, code: int, value: float) -> None:
        args = (self._project, ctypes.c_int(index), ctypes.c_int(code), ctypes.c_double(value))
        self._check(self._lib.EN_setnodevalue(*args), "setnodevalue")

    def set_link(self, index: int, code: int, value: float) -> None:
        args = (self._project, ctypes.c_int(index), ctypes.c_int(code), ctypes.c_double(value))
        self._check(self._lib.EN_setlinkvalue(*args), "setlinkvalue")

    def set_option(self, code: int, value: float) -> None:
        args = (self._project, ctypes.c_int(code), ctypes.c_double(value))
        self._check(self._lib.EN_setoption(*args), "setoption")

    def set_time_param(self, code: int, seconds: int) -> None:
        args = (self._project, ctypes.c_int(code), ctypes.c_long(seconds))
        self._check(self._lib.EN_settimeparam(*args), "settimeparam")

    def run(self) -> int:
        """Solve the hydraulics at the current time; returns that time (s)."""
        t = ctypes.c_long()
        self._check(self._lib.EN_runH(self._project, ctypes.byref(t)), "runH")
        return int(t.value)

    def next(self) -> int:
        """Advance the clock to the next period (tanks filled, controls checked); 0 = end."""
        step = ctypes.c_long()
        self._check(self._lib.EN_nextH(self._project, ctypes.byref(step)), "nextH")
        return int(step.value)

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            self._en.ENcloseH()
        finally:
            self._en.ENclose()
