"""HTTP routes, one module per area of the NGSI-LD API (clause 5 / 6 of the spec)."""
