"""dosi.web: the operations dashboard's server, a client of the hub like any other.

It serves the built front end (`static/`), passes `/ngsi-ld/...` through to the
hub unchanged (the NGSI-LD API and its live stream), and runs twin what-if jobs.
It imports no `dosi.hub` module: the dashboard sees only what any service sees.
`create_web_app` is in `dosi.web.app`.
"""
