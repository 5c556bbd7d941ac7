"""The OpenAPI description of the routes the hub serves (placeholder, filled in below)."""

from __future__ import annotations

from typing import Any


def openapi_document(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "dosi NGSI-LD hub", "version": "0.1.0"},
        "servers": [{"url": base_url}],
        "paths": {},
    }
