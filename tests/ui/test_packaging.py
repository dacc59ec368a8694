"""The pages' files reach every install: setup.cfg's package data covers each template and static
file (a wheel has nothing else), and the image builds the vendored assets as `make web-assets`
does and copies them next to the app's own."""

from __future__ import annotations

import configparser
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_db

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "web" / "ui"


def _package_data_globs() -> list[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config["options.package_data"]["web.ui"].split()


def test_package_data_covers_every_template_and_static_file() -> None:
    globs = _package_data_globs()
    files = [*UI.glob("templates/**/*"), *UI.glob("static/*")]
    files = [f.relative_to(UI).as_posix() for f in files if f.is_file()]
    assert any(f.startswith("templates/") for f in files) and "static/app.js" in files
    missing = [f for f in files if not any(fnmatch(f, g) for g in globs)]
    assert missing == []
    # The built vendor files are JavaScript; the build's own stamp is not package data.
    assert any(fnmatch("static/vendor/htmx.min.js", g) for g in globs)
    assert not any(fnmatch("static/vendor/.built", g) for g in globs)


def test_image_builds_the_assets_as_the_makefile_does() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"cd \$\(UI_DIR\) && (npm ci[^\n]*)", makefile).group(1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = re.search(r"FROM node:\S+ AS (\S+)", dockerfile)
    assert stage is not None
    assert f"RUN {recipe}" in dockerfile
    copy = f"COPY --from={stage.group(1)} /ui/static/vendor ./web/ui/static/vendor"
    assert copy in dockerfile
    # After the app's code is copied (else `COPY web` would not bring them, or would replace them).
    assert dockerfile.index(copy) > dockerfile.index("COPY web ./web")
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "web/ui/node_modules" in ignored
