"""The NGSI-LD data model: pure functions and types, no I/O beyond fetching @contexts."""
