"""NGSI-LD ProblemDetails errors (ETSI GS CIM 009, clause 5.5.2).

Every failure the API reports is one of these; routes turn them into
`application/problem+json` responses, the CLI into one-line messages.
"""

from __future__ import annotations

from typing import Any, ClassVar

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiError(Exception):
    """Base class: carries the ETSI error type, an HTTP status and a human detail."""

    error_type: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, instance: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.instance = instance

    @property
    def type_uri(self) -> str:
        return ERROR_BASE + self.error_type

    def to_problem(self) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.instance is not None:
            problem["instance"] = self.instance
        return problem


class InvalidRequest(NgsiError):
    error_type = "InvalidRequest"
    status = 400
    title = "Invalid request"


class BadRequestData(NgsiError):
    error_type = "BadRequestData"
    status = 400
    title = "Bad request data"


class AlreadyExists(NgsiError):
    error_type = "AlreadyExists"
    status = 409
    title = "Already exists"


class OperationNotSupported(NgsiError):
    error_type = "OperationNotSupported"
    status = 422
    title = "Operation not supported"


class ResourceNotFound(NgsiError):
    error_type = "ResourceNotFound"
    status = 404
    title = "Resource not found"


class NonexistentTenant(NgsiError):
    error_type = "NonexistentTenant"
    status = 404
    title = "Nonexistent tenant"


class LdContextNotAvailable(NgsiError):
    error_type = "LdContextNotAvailable"
    status = 503
    title = "@context not available"


class TooComplexQuery(NgsiError):
    error_type = "TooComplexQuery"
    status = 403
    title = "Too complex query"


class TooManyResults(NgsiError):
    error_type = "TooManyResults"
    status = 403
    title = "Too many results"


class InternalError(NgsiError):
    pass


class NotAcceptable(NgsiError):
    """HTTP 406: the Accept header names no representation the hub can produce."""

    error_type = "NotAcceptable"
    status = 406
    title = "Not acceptable"

    @property
    def type_uri(self) -> str:
        return "https://uri.etsi.org/ngsi-ld/errors/NotAcceptable"


class UnsupportedMediaType(NgsiError):
    """HTTP 415: the request body is not JSON or JSON-LD."""

    error_type = "UnsupportedMediaType"
    status = 415
    title = "Unsupported media type"


class PayloadTooLarge(NgsiError):
    """HTTP 413: the request body exceeds the configured limit."""

    error_type = "BadRequestData"
    status = 413
    title = "Payload too large"


class MethodNotAllowed(NgsiError):
    error_type = "InvalidRequest"
    status = 405
    title = "Method not allowed"
