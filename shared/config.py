"""All configuration, read once from environment variables and typed.

Every variable is documented in docs/operations.md ("Configuration"); keep the two in step.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me-0123456789"  # noqa: S105 - the value production refuses
SENTINEL_SCHEME = "redis+sentinel://"  # REDIS_URL once REDIS_SENTINELS is set
MIN_SECRET_CHARS = 32  # production refuses shorter secrets (docs/operations.md)


class Settings(BaseSettings):
    """Typed view of the process environment."""

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", protected_namespaces=()
    )

    env: Literal["development", "test", "production"] = Field("development", alias="MLSP_ENV")
    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/mlsp"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis behind Sentinel (docs/operations.md, "Redis Sentinel"): the sentinels' host:port
    # list and the master's name. REDIS_URL then gives only the database number and the data
    # nodes' credentials, and `redis_url` becomes a redis+sentinel:// URL every client follows
    # through failovers (shared/redis_client.py; the broker: shared/celery_config.py).
    redis_sentinels: str = Field("", pattern=r"^$|^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$")
    redis_sentinel_master: str = Field("mymaster", pattern=r"^[A-Za-z0-9_.-]+$")
    redis_sentinel_password: str = ""
    # Every application key in Redis starts with this, so deployments or test runs can share a
    # server. One per process, not per app: key names are built from it once, at import
    # (shared/redis_client.PREFIX), by modules both tiers share.
    redis_key_prefix: str = "mlsp:"
    secret_key: str = DEV_SECRET
    jwt_secret_key: str = ""
    access_token_expires_s: int = Field(900, ge=30)
    refresh_token_expires_s: int = Field(30 * 86400, ge=60)

    model_store_dir: Path = Path(".mlsp/models")
    # Where artifacts live (docs/operations.md, "Artifact store (S3, MinIO)"): file:///path, or
    # s3://bucket/prefix for any S3-compatible service at S3_ENDPOINT_URL (empty: AWS S3), with
    # credentials from the standard AWS chain. Empty: MODEL_STORE_DIR.
    artifact_store_url: str = Field("", pattern=r"^$|^file://.+|^s3://[^/]+(/.*)?$")
    s3_endpoint_url: str = ""
    # The local read-through cache of an s3:// store, shared by the processes of a host.
    artifact_cache_dir: Path = Path(tempfile.gettempdir()) / "mlsp-artifact-cache"
    artifact_cache_max_mb: float = Field(10240, gt=0)
    max_upload_mb: float = Field(100, gt=0)
    max_rows_per_request: int = Field(10_000, ge=1)
    max_body_mb: float = Field(32, gt=0)
    # The model cache (per worker process) is bounded by bytes; the count is only a backstop,
    # high enough that many small models (a platform's usual tenants) all stay loaded.
    model_cache_size: int = Field(1000, ge=1)
    model_cache_max_mb: float = Field(1024, gt=0)

    host: str = "127.0.0.1"
    port: int = 8000
    # Web server processes and request threads in each (web/serve.py): a sync prediction holds
    # its thread while it waits, so threads bound how many wait at once per process.
    web_concurrency: int = Field(2, ge=1)
    web_threads: int = Field(16, ge=1)
    # Behind a reverse proxy: the addresses (or CIDR networks, comma-separated; `*` for any)
    # whose X-Forwarded-For / X-Forwarded-Proto are believed. Empty: the peer is the client.
    forwarded_allow_ips: str = ""
    flower_port: int = 5555
    flower_basic_auth: str = ""

    default_queue: str = "mlsp"
    validation_wait_s: float = Field(5, ge=0)
    task_soft_time_limit_s: int = Field(60, ge=1)
    task_time_limit_s: int = Field(90, ge=2)
    job_ttl_s: int = Field(3600, ge=1)
    job_retention_days: int = Field(30, ge=1)
    job_max_attempts: int = Field(3, ge=1)
    artifact_grace_s: int = Field(86400, ge=0)
    job_stuck_after_s: int = Field(60, ge=1)
    job_reaper_interval_s: float = Field(15, gt=0)
    max_queue_depth: int = Field(10_000, ge=1)
    # Jobs one user may have waiting across all their models (429 `backlog_full` past it; 0: no
    # limit): the second line of fairness, behind the round robin of the drain scheduler.
    max_queued_per_user: int = Field(50_000, ge=0)
    result_write_retry_s: float = Field(60, ge=0)

    # Batches (bulk file predictions): the largest input file, rows per chunk (one worker task,
    # one row group of the rows file), and batches one user may have queued or running at once.
    max_batch_mb: float = Field(2048, gt=0)
    batch_chunk_rows: int = Field(20_000, ge=1)
    max_active_batches_per_user: int = Field(4, ge=1)

    batch_max_jobs: int = Field(64, ge=1)
    batch_max_rows: int = Field(10_000, ge=1)
    # Off by default, as in Triton's dynamic batcher: under load, batches fill up on their own
    # while the previous one runs, and a fixed wait left the CPU idle (bench: logreg 16-conn
    # 0.40 -> 0.45 of the baseline, forest 3.1 -> 3.5 with 0 instead of 2 ms).
    batch_max_wait_ms: float = Field(0, ge=0)
    drain_budget_s: float = Field(2, gt=0)
    drain_linger_ms: float = Field(50, ge=0)
    # Sync predictions up to this many rows travel with their rows and get their row written by
    # the worker (shared/inline_jobs.py); larger ones, and 0 here, write the row first.
    sync_inline_max_rows: int = Field(1000, ge=0)
    # Worker limits (issue 18)
    # Children per worker (the Procfile's --concurrency): the pool size pushes assume until
    # workers register theirs. MAX_DRAINS_PER_OWNER: drain processes one owner's models may hold
    # at once across the pool (unset: all the registered processes but one; 0: no cap).
    worker_concurrency: int = Field(2, ge=1)
    max_drains_per_owner: int | None = Field(None, ge=0)
    # RLIMIT_AS of each worker child (0: none). A child's address space right after its imports
    # measured 562 MiB (VmSize; RSS 210 MiB): thread stacks and allocator arenas, not memory
    # used. 4 GiB leaves room for a full model cache and a large batch.
    worker_memory_limit_mb: int = Field(4096, ge=0)
    # Celery's worker_max_memory_per_child: a child past this RSS after a task is replaced (0: off).
    worker_max_memory_per_child_mb: int = Field(2048, ge=0)

    # Webhooks (docs/webhooks.md). Receivers must be https and resolve to public addresses unless
    # these allow otherwise (tests and `make run` turn both on for a receiver on the loopback).
    webhook_allow_http: bool = False
    webhook_allow_private: bool = False
    # Keys that encrypt the endpoints' signing secrets at rest, comma-separated: the first
    # encrypts, every one decrypts (rotation). Empty: a key derived from SECRET_KEY.
    webhook_encryption_key: str = ""
    webhook_timeout_s: float = Field(10, gt=0)  # one delivery attempt, connect to last byte
    # Multiplies the retry delays and the 24 h window (tests shrink it; 1 in production).
    webhook_retry_scale: float = Field(1, gt=0)
    webhook_dispatch_interval_s: float = Field(2, gt=0)  # beat: due deliveries sent this often
    # A claimed delivery whose attempt never reported (its worker died) is due again after this.
    webhook_lease_s: float = Field(120, gt=0)
    # Processes of the `webhooks` worker (the Procfile's --concurrency reads the same variable):
    # a dispatch starts at most this many delivery loops.
    webhook_concurrency: int = Field(4, ge=1)
    max_webhooks_per_user: int = Field(20, ge=1)

    # Compiled inference: serve through ONNX Runtime only when it gives scikit-learn's answers.
    onnx_enabled: bool = True
    onnx_proba_atol: float = Field(1e-6, ge=0)
    onnx_regression_rtol: float = Field(1e-6, ge=0)
    onnx_max_model_mb: float = Field(64, gt=0)
    # Calls over more rows use scikit-learn where the upload has it (workers/runtimes/selection.py).
    onnx_max_batch_rows: int = Field(5000, ge=0)  # ~0.25 s of conversion per MB (RandomForest)

    # The validation sandbox (workers/validation/sandbox.py): what reading one upload may take.
    # Memory is on top of the sandbox's own address space after its imports.
    validation_memory_mb: int = Field(1024, ge=64)
    validation_cpu_s: int = Field(40, ge=1)
    validation_timeout_s: float = Field(45, gt=0)
    # A model still validating after this long lost its task: the reaper sends it again, and the
    # JOB_MAX_ATTEMPTS-th delivery marks it failed.
    model_stuck_after_s: float = Field(600, gt=0)

    rate_limit_enabled: bool = True
    rate_limit_predict: str = "600/minute"
    rate_limit_auth: str = "10/minute"
    cors_origins: str = ""
    # Web tier protection (issue 18)
    rate_limit_upload: str = "30/hour"  # per user, on model uploads
    rate_limit_health: str = "60/minute"  # per client IP, on the detailed /api/v1/health
    # Requests that wait (long-poll, sync predict, OIP infer, upload validation) hold a request
    # thread: per web process, at most this many per user, and MAX_WAITS in all (0: WEB_THREADS
    # - 4, at least 1), so that threads stay free for everything else.
    max_waits_per_user: int = Field(8, ge=1)
    max_waits: int = Field(0, ge=0)
    # /api/v1/health's worker count comes from a background ping this often (web/worker_count.py).
    health_workers_refresh_s: float = Field(10, gt=0)
    worker_metrics_host: str = "127.0.0.1"  # the worker's Prometheus exporter's address
    db_pool_size: int = Field(10, ge=1)
    db_connect_timeout_s: int = Field(3, ge=1)

    # Observability (docs/operations.md, "Metrics (Prometheus)" and "Logs").
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    slow_request_ms: float = Field(1000, gt=0)
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    # /metrics names the models with the longest pending lists (mlsp_pending_jobs_by_model, this
    # many at most; 0: aggregates only). Off by default: /metrics has no auth and a model id names
    # a tenant's model; turn it on only where /metrics stays on an internal network.
    metrics_top_models: int = Field(0, ge=0, le=100)
    metrics_dir: Path = Path(tempfile.gettempdir()) / "mlsp-metrics"
    analytics_timeout_ms: int = Field(5000, ge=100)

    # Web pages (web/ui/): how long a signed-in browser session lives without use, and whether
    # its cookie is Secure (unset: everywhere but MLSP_ENV=development, which serves plain http).
    ui_session_ttl_s: int = Field(12 * 3600, ge=60)
    session_cookie_secure: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.redis_sentinels and not self.redis_url.startswith(SENTINEL_SCHEME):
            self.redis_url = _sentinel_url(self)
        if not self.jwt_secret_key:
            self.jwt_secret_key = self.secret_key
        if self.task_time_limit_s <= self.task_soft_time_limit_s:
            raise ValueError("TASK_TIME_LIMIT_S must exceed TASK_SOFT_TIME_LIMIT_S")
        return self

    def require_web_secrets(self) -> None:
        """In production, refuse the development secret and any under MIN_SECRET_CHARS.

        Called by the web app factory, the only tier that signs anything: workers, beat and
        Flower run without SECRET_KEY/JWT_SECRET_KEY in their environment (Procfile, compose)."""
        if self.env != "production":
            return
        for name, value in (
            ("SECRET_KEY", self.secret_key),
            ("JWT_SECRET_KEY", self.jwt_secret_key),
        ):
            if value == DEV_SECRET or len(value) < MIN_SECRET_CHARS:
                raise ValueError(
                    f"{name} must be set to a secret of at least {MIN_SECRET_CHARS} characters "
                    "in production (MLSP_ENV=production)"
                )

    @property
    def secure_cookies(self) -> bool:
        """The browser session cookie is sent over https only (SESSION_COOKIE_SECURE)."""
        if self.session_cookie_secure is not None:
            return self.session_cookie_secure
        return self.env != "development"

    @property
    def wait_slots(self) -> int:
        """Concurrent waits allowed per web process (MAX_WAITS, or WEB_THREADS - 4)."""
        return self.max_waits or max(1, self.web_threads - 4)

    @property
    def task_deadline_s(self) -> float:
        """No task outlives its hard time limit: a lease, a drainer's registration or a `running`
        job older than this has lost its worker."""
        return self.task_time_limit_s + 5

    @property
    def validation_wall_s(self) -> float:
        """The sandbox's wall clock: VALIDATION_TIMEOUT_S, kept inside the task's soft limit."""
        return max(1.0, min(self.validation_timeout_s, self.task_soft_time_limit_s - 2))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_batch_bytes(self) -> int:
        return int(self.max_batch_mb * 1024 * 1024)

    @property
    def batch_queue(self) -> str:
        """The Celery queue of batch tasks, served by the `batch` worker (Procfile): a pool of
        its own at lower CPU priority, so a batch never holds the processes jobs wait for."""
        return f"{self.default_queue}.batches"

    @property
    def artifact_cache_bytes(self) -> int:
        return int(self.artifact_cache_max_mb * 1024 * 1024)

    @property
    def webhook_queue(self) -> str:
        """The Celery queue of webhook deliveries, served by the `webhooks` worker (Procfile): a
        slow receiver holds one of its processes, never one that predictions wait for."""
        return f"{self.default_queue}.webhooks"

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def sqlalchemy_url(self) -> str:
        """DATABASE_URL with the psycopg2 driver spelled out (Heroku-style URLs say postgres://)."""
        url = self.database_url
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg2://" + url[len(prefix) :]
        return url


def _sentinel_url(settings: Settings) -> str:
    """`redis+sentinel://[user:password@]host:port,.../<master>/<db>[?sentinel_password=...]`:
    REDIS_URL's credentials and database number, the sentinels' addresses."""
    from urllib.parse import urlencode, urlsplit

    plain = urlsplit(settings.redis_url)
    userinfo, at, _ = plain.netloc.rpartition("@")  # kept as written (percent-encoded)
    auth = userinfo + at
    db = plain.path.strip("/") or "0"
    query = settings.redis_sentinel_password and urlencode(
        {"sentinel_password": settings.redis_sentinel_password}
    )
    url = f"{SENTINEL_SCHEME}{auth}{settings.redis_sentinels}/{settings.redis_sentinel_master}/{db}"
    return f"{url}?{query}" if query else url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, parsed on first use."""
    return Settings()
