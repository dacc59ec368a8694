"""Python SDK of the ML Model Serving Platform (depends on `requests` only).

from mlsp import Client

client = Client("http://127.0.0.1:8000", api_key="mlp_...")
model = client.upload("iris.joblib", name="iris")
job = client.predict(model, [[5.1, 3.5, 1.4, 0.2]])
job.predictions
"""

from mlsp.client import Client
from mlsp.errors import (
    AuthError,
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
from mlsp.resources import Job, JobGroup, Model

__all__ = [
    "AuthError",
    "Client",
    "Conflict",
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
]
