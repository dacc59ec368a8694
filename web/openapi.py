"""The OpenAPI document (one SpecTree instance, registered in `web.create_app`) and the helpers
route modules describe themselves with."""

from __future__ import annotations

from spectree import SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData

from shared.schemas.common import ErrorResponse
from web.errors import InputFreeErrors, raise_validation_error

spec = SpecTree(
    "flask",
    title="ML Model Serving Platform",
    version="1",
    path="api/v1/apidoc",
    mode="strict",
    validation_error_status=422,
    validation_error_model=ErrorResponse,
    before=raise_validation_error,
    model_adapter=InputFreeErrors(),
    annotations=False,
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")
        ),
        SecurityScheme(
            name="apiKey",
            data=SecuritySchemeData(type=SecureType.API_KEY, name="X-API-Key", field_in="header"),
        ),
    ],
)

# Either credential works on every protected route.
AUTH = [{"bearer": []}, {"apiKey": []}]

# What any authenticated route can answer: bad credentials, a disabled account, a malformed
# body, a dependency outage.
PROTECTED_ERRORS = (400, 401, 403, 503)


def errors(*codes: int) -> dict[str, type[ErrorResponse]]:
    """spectree `Response` keyword arguments documenting these codes with the error shape."""
    return {f"HTTP_{code}": ErrorResponse for code in codes}
