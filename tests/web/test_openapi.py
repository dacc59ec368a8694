"""The OpenAPI document and the API's documentation pages (web/openapi.py, web/__init__.py): the
pages work without internet, their scripts and styles come with the page from this server, none
from a CDN."""

from __future__ import annotations

import re

import pytest

# Where a page would load a script, a style sheet or an image from.
_LOADED_FROM = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*["']([^"']+)""", re.I)


@pytest.mark.no_db
@pytest.mark.parametrize("page", ["/api/v1/apidoc/swagger/", "/api/v1/apidoc/redoc/"])
def test_docs_pages_load_nothing_from_another_host(client, page):
    resp = client.get(page)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    external = [url for url in _LOADED_FROM.findall(html) if re.match(r"(https?:)?//", url)]
    assert external == []
    assert "SwaggerUIBundle" in html if "swagger" in page else "Redoc" in html
    assert "/api/v1/apidoc/openapi.json" in html


@pytest.mark.no_db
def test_docs_shortcut_leads_to_swagger(client):
    resp = client.get("/api/v1/docs")
    assert resp.status_code in (301, 302)
    assert resp.headers["Location"].endswith("/api/v1/apidoc/swagger/")


def test_openapi_document_and_docs(client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/auth/register" in doc["paths"]
    assert client.get("/api/v1/docs").status_code in (301, 302)
    assert client.get("/api/v1/apidoc/swagger/").status_code == 200
