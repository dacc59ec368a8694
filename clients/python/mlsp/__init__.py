"""Python SDK of the ML Model Serving Platform (depends on `requests` only).

from mlsp import Client

client = Client("http://127.0.0.1:8000", api_key="mlp_...")
model = client.upload("iris.joblib", name="iris")
job = client.predict(model, [[5.1, 3.5, 1.4, 0.2]])
job.predictions
batch = client.batch_predict(model, "rows.parquet").wait()
batch.download("predictions.parquet")
event = verify_webhook(secret, request.headers, request.get_data())  # in a webhook receiver
"""

from mlsp.client import Client
from mlsp.errors import (
    AuthError,
    BatchFailed,
    BatchTimeout,
    Conflict,
    JobFailed,
    JobTimeout,
    MlspError,
    NotFound,
    RateLimited,
    ServerError,
    Unavailable,
    ValidationError,
)
from mlsp.resources import Batch, Job, JobGroup, Model
from mlsp.webhooks import InvalidWebhook, verify_webhook

__all__ = [
    "AuthError",
    "Batch",
    "BatchFailed",
    "BatchTimeout",
    "Client",
    "Conflict",
    "InvalidWebhook",
    "Job",
    "JobFailed",
    "JobGroup",
    "JobTimeout",
    "MlspError",
    "Model",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Unavailable",
    "ValidationError",
    "verify_webhook",
]
