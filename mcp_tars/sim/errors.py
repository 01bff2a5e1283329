"""API errors in the real wire format."""

from __future__ import annotations

from typing import Any

STATUS_BY_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class APIError(Exception):
    """An error the simulated API answers with (status + typed error body)."""

    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status or STATUS_BY_ERROR_TYPE.get(error_type, 500)

    def body(self, request_id: str | None) -> dict[str, Any]:
        return error_body(self.error_type, self.message, request_id)


def error_body(error_type: str, message: str, request_id: str | None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def invalid_request(message: str) -> APIError:
    return APIError("invalid_request_error", message)
