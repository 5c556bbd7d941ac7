"""dosi (도시): an open smart city platform built around an NGSI-LD context broker."""

__version__ = "0.1.0"
