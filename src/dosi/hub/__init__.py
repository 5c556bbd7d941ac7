"""The NGSI-LD context broker: ASGI app, routes, services and storage backends."""
