"""OpenAPI helpers shared by the route modules."""

from __future__ import annotations

# Either credential works on every protected route.
AUTH = [{"bearer": []}, {"apiKey": []}]
