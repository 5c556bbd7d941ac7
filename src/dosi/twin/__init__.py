"""dosi.twin: a live digital twin of a district on real simulators, wired to the hub.

SUMO (libsumo), EPANET (through WNTR) and pandapower advance on one clock; their
virtual sensors reach the hub as field devices would (through the IoT agent) and
their actuators obey what services write into the hub.
"""
