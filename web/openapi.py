"""OpenAPI helpers shared by the route modules."""

from __future__ import annotations

from shared.schemas.common import ErrorResponse

# Either credential works on every protected route.
AUTH = [{"bearer": []}, {"apiKey": []}]

# What any authenticated route can answer: bad credentials, a disabled account, a malformed
# body, a dependency outage.
PROTECTED_ERRORS = (400, 401, 403, 503)


def errors(*codes: int) -> dict[str, type[ErrorResponse]]:
    """spectree `Response` keyword arguments documenting these codes with the error shape."""
    return {f"HTTP_{code}": ErrorResponse for code in codes}
