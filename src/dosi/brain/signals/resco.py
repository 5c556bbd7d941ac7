"""Where the RESCO benchmark maps are: inside the installed sumo-rl package (pip
`sumo-rl==1.4.5`; its maps are non-commercial/GPL, so dosi reads them, never ships them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MAPS = (
    "cologne1",
    "cologne3",
    "cologne8",
    "ingolstadt1",
    "ingolstadt7",
    "ingolstadt21",
    "grid4x4",
    "arterial4x4",
)


def resco_root() -> Path | None:
    """The RESCO folder of sumo-rl, found without importing it (its import needs SUMO_HOME)."""
    spec = importlib.util.find_spec("sumo_rl")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "nets" / "RESCO"
    return root if root.is_dir() else None


def resco_config(name: str) -> Path:
    """The .sumocfg of one RESCO map; LookupError if sumo-rl or the map is missing."""
    if name not in MAPS:
        raise LookupError(f"unknown RESCO map {name!r} (maps: {', '.join(MAPS)})")
    root = resco_root()
    if root is None:
        raise LookupError('the RESCO maps come with sumo-rl: pip install "sumo-rl==1.4.5"')
    path = root / name / f"{name}.sumocfg"
    if not path.is_file():
        raise LookupError(f"{path} is missing")
    return path
