# One image for every process type (web, worker, beat, flower, migrate): the command picks which.

# The web pages' third-party browser assets (htmx, Chart.js): installed from npm with the lock
# file and copied into static/vendor by the same commands as `make web-assets` (the app serves
# them itself: no CDN). Only the copied files reach the final image, not Node.js or node_modules.
FROM node:22-slim AS web-assets
WORKDIR /ui
COPY web/ui/package.json web/ui/package-lock.json web/ui/build.mjs ./
RUN npm ci --no-audit --no-fund && npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    MODEL_STORE_DIR=/data/models

RUN groupadd --system mlsp \
    && useradd --system --gid mlsp --create-home --home-dir /home/mlsp --shell /usr/sbin/nologin mlsp

WORKDIR /app

# Dependencies first, read from setup.cfg: this layer is rebuilt only when the metadata changes,
# not on every code edit. setup.cfg is the server distribution: runtime dependencies only (the dev
# tools with their embedded PostgreSQL and Redis, the test tools and the SDK are other
# distributions, under devtools/ and clients/python/, never installed here).
COPY setup.cfg pyproject.toml README.md ./
# LightGBM's library links the system's OpenMP runtime, which the slim image lacks (scikit-learn
# and XGBoost carry their own copy).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN python -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); print(c['options']['install_requires'])" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Only the code: no .venv/.mlsp/tests from a developer's tree end up in the image.
COPY shared ./shared
COPY web ./web
COPY --from=web-assets /ui/static/vendor ./web/ui/static/vendor
COPY workers ./workers
COPY migrations ./migrations
# Editable: `web` finds migrations/ next to itself (web/__init__.py: _migrations_dir) at /app.
RUN pip install --no-cache-dir --no-deps -e . \
    && mkdir -p /data/models /data/flower \
    && chown -R mlsp:mlsp /data

USER mlsp
# A fresh named volume copies this directory's owner (mlsp), so the app can write artifacts.
VOLUME ["/data/models"]
EXPOSE 8000

# The web process, as in the Procfile (granian; HOST, PORT, WEB_CONCURRENCY, WEB_THREADS).
CMD ["python", "-m", "web.serve"]
