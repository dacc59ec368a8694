"""The typed accessors of web/extensions.py: everything an app reaches follows its own settings,
not the process environment's."""

from __future__ import annotations

from shared.config import Settings
from tests.fixtures.services import free_port
from web import create_app, extensions


def test_store_redis_and_queue_depths_follow_the_apps_settings(tmp_path):
    port = free_port()  # nothing listens there
    app = create_app(
        Settings(MODEL_STORE_DIR=str(tmp_path / "store"), REDIS_URL=f"redis://127.0.0.1:{port}/0")
    )
    with app.app_context():
        assert extensions.settings().model_store_dir == tmp_path / "store"
        assert extensions.store().local_path(f"{'0' * 36}.joblib").parent == tmp_path / "store"
        assert extensions.redis().connection_pool.connection_kwargs["port"] == port
        assert extensions.producer().conf.broker_url.endswith(f":{port}/0")
    scrape = app.test_client().get("/metrics").get_data(as_text=True)
    assert "mlsp_queue_depth_up 0.0" in scrape  # the depths were read from the app's Redis
