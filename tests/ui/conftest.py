"""Fixtures of the web pages' tests: the app served over real HTTP, a headless Debian chromium
driven by Playwright (never a downloaded browser), and a tiny model file to upload."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tests.fixtures.live import serve
from tests.fixtures.models import FEATURES, dump, iris

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Where the browser tests save their screenshots: a run's artifacts (git-ignored), so that a test
# run leaves the checkout as it was; UI_SCREENSHOTS_DIR=docs/screenshots refreshes the README's.
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"


@pytest.fixture
def browser_client(app: Flask) -> FlaskClient:
    """A test client that keeps the pages' session cookie, as a browser would."""
    return app.test_client()


@pytest.fixture(scope="session")
def live_url(app: Flask) -> Iterator[str]:
    """The test app (MLSP_ENV=test: Secure session cookies, as outside development) on a port."""
    with serve(app) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the run (`apt-get install chromium`; .ci/run does)."""
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.fail(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_url: str):
    """A fresh browser context (no cookies) at a phone-to-laptop width, on the live server."""
    context = browser.new_context(base_url=live_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    problems: list[str] = []  # script errors and Content-Security-Policy refusals
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda err: problems.append(str(err)))
    yield tab
    context.close()
    assert problems == []


@pytest.fixture(scope="session")
def frame_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scaler + logistic regression fitted on a named iris frame: four typed input columns."""
    x, y = iris()
    frame = pd.DataFrame(x, columns=FEATURES)
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    return dump(model.fit(frame, y), tmp_path_factory.mktemp("ui") / "iris.joblib")
