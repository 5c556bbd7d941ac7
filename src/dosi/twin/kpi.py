"""Key figures of a run: labels in Korean and English, units, and which way is better."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kpi:
    en: str
    ko: str
    unit: str
    lower_is_better: bool = True
    digits: int = 1


KPI_LABELS: dict[str, Kpi] = {
    "traffic.mean_travel_time": Kpi("Mean travel time", "평균 통행 시간", "s"),
    "traffic.mean_delay": Kpi("Mean delay", "평균 지체", "s"),
    "traffic.mean_speed": Kpi("Mean trip speed", "평균 통행 속도", "km/h", lower_is_better=False),
    "traffic.stops": Kpi("Stops per vehicle", "차량당 정지", "", digits=2),
    "traffic.co2": Kpi("CO2 emitted", "CO2 배출", "kg"),
    "traffic.arrived": Kpi("Trips completed", "완료 통행", "", lower_is_better=False, digits=0),
    "traffic.teleports": Kpi("Gridlock teleports", "정체 순간이동", "", digits=0),
    "water.min_pressure": Kpi(
        "Minimum pressure", "최저 수압", "m", lower_is_better=False, digits=2
    ),
    "water.mean_pressure": Kpi("Mean pressure", "평균 수압", "m", lower_is_better=False, digits=2),
    "water.unserved_demand": Kpi("Unserved demand", "미공급 수요", "m³", digits=2),
    "water.leak_volume": Kpi("Leak volume", "누수량", "m³", digits=2),
    "power.max_line_loading": Kpi("Max line loading", "최대 선로 부하율", "%"),
    "power.voltage_violations": Kpi("Voltage-band violations", "전압 범위 이탈", "", digits=0),
    "power.min_voltage": Kpi("Minimum voltage", "최저 전압", "pu", lower_is_better=False, digits=3),
    "power.pv_energy": Kpi("PV energy", "태양광 발전량", "MWh", lower_is_better=False, digits=2),
    "power.losses": Kpi("Grid losses", "계통 손실", "MWh", digits=3),
    "power.nonconverged": Kpi("Power flows not converged", "조류계산 미수렴", "", digits=0),
}


def label(key: str, language: str = "en") -> str:
    kpi = KPI_LABELS.get(key)
    if kpi is None:
        return key
    return kpi.ko if language == "ko" else kpi.en


def formatted(key: str, value: float) -> str:
    kpi = KPI_LABELS.get(key)
    digits = kpi.digits if kpi else 2
    return f"{value:,.{digits}f}"


def change(key: str, baseline: float, variant: float) -> tuple[float | None, bool | None]:
    """(relative change, whether it is an improvement); None where the baseline is zero."""
    kpi = KPI_LABELS.get(key)
    diff = variant - baseline
    better = None if diff == 0 or kpi is None else (diff < 0) == kpi.lower_is_better
    if baseline == 0:
        return None, better
    return diff / abs(baseline), better
