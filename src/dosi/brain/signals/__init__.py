"""Adaptive traffic signal control on SUMO networks (benchmarked on the RESCO maps).

`phases` derives safe phase sets from a network's own signal programs, `driver` applies
controller decisions to SUMO (min/max green, yellow and all-red enforced there, so no
controller can show conflicting greens), `controllers` holds the control policies,
`metrics` and `run` measure one controller on one SUMO config.
"""
