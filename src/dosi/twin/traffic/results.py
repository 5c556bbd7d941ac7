"""Road segments drawn on the map, and the run's key figures from SUMO's own outputs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from dosi.twin.geo import Placement
from dosi.twin.model import Asset, Value
from dosi.twin.traffic.roadnet import Edge, Point, RoadNet


def _centre_line(edge: Edge) -> list[Point]:
    """The middle of the carriageway: between the outer lanes' shapes."""
    right, left = edge.lanes[0].shape, edge.lanes[-1].shape
    if len(right) != len(left):
        return list(right)
    return [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2) for a, b in zip(right, left, strict=True)]


def road_segments(net: RoadNet, placement: Placement) -> list[Asset]:
    """One RoadSegment per (one-way) edge; Smart Data Models units (km, km/h)."""
    assets = []
    for edge in sorted(net.edges.values(), key=lambda e: e.edge_id):
        major = len(edge.lanes) > 1
        static: dict[str, Value] = {
            "name": f"{edge.name} ({edge.source} to {edge.target})",
            "totalLaneNumber": len(edge.lanes),
            "maximumAllowedSpeed": round(edge.speed * 3.6, 1),
            "length": round(edge.length / 1000, 3),  # the schema's unit is km
            "roadClass": "MAJOR_CITY_ROAD" if major else "MINOR_CITY_ROAD",
        }
        assets.append(
            Asset(
                asset_id=f"road-{edge.edge_id}",
                entity_type="RoadSegment",
                location=placement.line(_centre_line(edge)),
                static=static,
            )
        )
    return assets


def trip_kpis(tripinfo: Path, statistics: Path) -> dict[str, float]:
    """Means over the vehicles that arrived, from the tripinfo and statistic outputs."""
    durations, delays, stops, speeds = 0.0, 0.0, 0.0, 0.0
    arrived = 0
    if tripinfo.is_file():
        for _event, element in ET.iterparse(tripinfo):
            if element.tag == "tripinfo":
                arrived += 1
                duration = float(element.get("duration", 0))
                durations += duration
                if duration > 0:  # SUMO's own trip speed: route length / duration
                    speeds += float(element.get("routeLength", 0)) / duration
                delays += float(element.get("timeLoss", 0))
                stops += float(element.get("waitingCount", 0))
                element.clear()
    teleports = 0.0
    if statistics.is_file():
        node = ET.parse(statistics).getroot().find("teleports")
        if node is not None:
            teleports = float(node.get("total", 0))
    n = max(arrived, 1)
    return {
        "traffic.mean_travel_time": round(durations / n, 2),
        "traffic.mean_delay": round(delays / n, 2),
        "traffic.mean_speed": round(speeds / n * 3.6, 2),  # km/h
        "traffic.stops": round(stops / n, 3),
        "traffic.arrived": float(arrived),
        "traffic.teleports": teleports,
    }
