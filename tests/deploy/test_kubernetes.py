"""deploy/kubernetes/: the kustomize base validates against the Kubernetes schemas (strict: an
unknown or misspelt field fails), the KEDA ScaledObjects against KEDA's, and its pieces fit
together and with the code (settings, secrets, probes, queues, shutdown)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from shared.config import Settings
from tests.deploy.manifests import containers, find, pod_specs, render
from web import create_app

# The oldest Kubernetes the base is meant for (autoscaling/v2, policy/v1, seccompProfile are
# all older) and the newest the package ships.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
KEDA_SCHEMA = Path(__file__).parent / "schemas" / "keda-scaledobject.json"
WEB_SECRETS = {"SECRET_KEY", "JWT_SECRET_KEY"}  # never in the ConfigMap
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return render()


def _strict(schema: dict) -> dict:
    """Objects with declared properties take no others (kubernetes-validate's strict mode)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def _keda_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_strict(json.loads(KEDA_SCHEMA.read_text())))


def test_every_kind_is_expected(docs):
    kinds = sorted({(d["apiVersion"], d["kind"]) for d in docs})
    assert kinds == [
        ("apps/v1", "Deployment"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("batch/v1", "Job"),
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("policy/v1", "PodDisruptionBudget"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
    ]
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "duplicate objects"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_objects_validate_strictly(docs, version):
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_catches_a_typo(docs):
    """The check can fail: a misspelt field is refused, in both schemas."""
    web = copy.deepcopy(find(docs, "Deployment", "mlsp-web"))
    web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSIONS[-1], strict=True)
    scaled = copy.deepcopy(find(docs, "ScaledObject", "mlsp-worker"))
    scaled["spec"]["minReplicas"] = 1
    assert list(_keda_validator().iter_errors(scaled))


def test_scaled_objects_validate_against_kedas_schema(docs):
    validator = _keda_validator()
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert {d["metadata"]["name"] for d in scaled} == {"mlsp-worker", "mlsp-batch"}
    for doc in scaled:
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, (doc["metadata"]["name"], errors)
        target = doc["spec"]["scaleTargetRef"]["name"]
        assert find(docs, "Deployment", target)
        for trigger in doc["spec"]["triggers"]:
            assert trigger["type"] == "prometheus"
            assert float(trigger["metadata"]["threshold"]) > 0


def test_scaled_workloads_leave_replicas_to_their_autoscaler(docs):
    hpa = find(docs, "HorizontalPodAutoscaler", "mlsp-web")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "mlsp-web"
    metric = hpa["spec"]["metrics"][0]
    assert metric["resource"]["name"] == "cpu"
    for name in ("mlsp-web", "mlsp-worker", "mlsp-batch"):
        assert "replicas" not in find(docs, "Deployment", name)["spec"], name


def test_beat_is_a_single_replica_never_two(docs):
    beat = find(docs, "Deployment", "mlsp-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


def _pod_labels(docs: list[dict]) -> list[dict]:
    return [d["spec"]["template"]["metadata"]["labels"] for d, _ in pod_specs(docs)]


def test_selectors_match_pods(docs):
    labels = _pod_labels(docs)
    for doc in docs:
        if doc["kind"] == "Service":
            selector = doc["spec"]["selector"]
        elif doc["kind"] in ("PodDisruptionBudget", "Deployment"):
            selector = doc["spec"]["selector"]["matchLabels"]
        else:
            continue
        matched = [pod for pod in labels if selector.items() <= pod.items()]
        assert len(matched) == 1, (doc["kind"], doc["metadata"]["name"], selector)
    pdb = find(docs, "PodDisruptionBudget", "mlsp-web")
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "web"


def test_probes_hit_real_routes(docs):
    rules = {rule.rule for rule in create_app(Settings()).url_map.iter_rules()}
    web = find(docs, "Deployment", "mlsp-web")["spec"]["template"]["spec"]["containers"][0]
    paths = {web[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe")}
    assert paths == {"/api/v1/health/live"} and "/api/v1/health/live" in rules
    assert web["readinessProbe"]["httpGet"]["path"] == "/api/v1/health/ready"
    assert "/api/v1/health/ready" in rules
    annotations = find(docs, "Deployment", "mlsp-web")["spec"]["template"]["metadata"]
    assert annotations["annotations"]["prometheus.io/path"] in rules


def _config(docs) -> dict[str, str]:
    return find(docs, "ConfigMap", "mlsp-config")["data"]


def _commands(docs) -> str:
    return " ".join(" ".join(c.get("command", []) + c.get("args", [])) for _, c in containers(docs))


def test_configmap_keys_are_settings_or_command_flags(docs):
    """A misspelt setting would be ignored silently (extra="ignore"): each key is a setting's
    name, or a flag the containers' commands read as $(KEY); the values parse."""
    names = {f.alias or name.upper() for name, f in Settings.model_fields.items()}
    config = _config(docs)
    used_in_commands = set(VAR_REF.findall(_commands(docs)))
    unknown = {k for k in config if k not in names and k not in used_in_commands}
    assert not unknown
    settings = Settings(**{k: v for k, v in config.items() if k in names})
    assert settings.env == "production" and settings.default_queue == "mlsp"


def _env_names(container: dict, config: dict) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "mlsp-config"
        names |= set(config)
    return names


def test_every_reference_resolves(docs):
    """$(VAR) in commands and env values, and every secret key a container reads."""
    config, secret = _config(docs), find(docs, "Secret", "mlsp-secrets")["stringData"]
    for workload, container in containers(docs):
        defined = _env_names(container, config)
        text = " ".join(container.get("command", []) + container.get("args", []))
        text += " ".join(e.get("value", "") for e in container.get("env", []))
        missing = set(VAR_REF.findall(text)) - defined
        assert not missing, (workload["metadata"]["name"], missing)
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "mlsp-secrets" and ref["key"] in secret, ref


def _secret_keys(container: dict) -> set[str]:
    refs = (e.get("valueFrom", {}).get("secretKeyRef") for e in container.get("env", []))
    return {ref["key"] for ref in refs if ref}


def test_secrets_only_where_used(docs):
    """Only web and the migration (which builds the web app) sign anything (issue 18); the
    webhooks worker gets SECRET_KEY only to derive the key of the signing secrets, as in the
    Procfile; only Flower reads its login; secrets never sit in the ConfigMap."""
    for workload, container in containers(docs):
        keys = _secret_keys(container)
        name = workload["metadata"]["name"]
        assert ("JWT_SECRET_KEY" in keys) == (name in ("mlsp-web", "mlsp-migrate")), name
        signing = ("mlsp-web", "mlsp-migrate", "mlsp-webhooks")
        assert ("SECRET_KEY" in keys) == (name in signing), name
        assert ("FLOWER_BASIC_AUTH" in keys) == (name == "mlsp-flower"), name
    assert not set(_config(docs)) & (WEB_SECRETS | {"DATABASE_URL", "REDIS_URL"})


def test_redis_clients_can_follow_sentinel(docs):
    """REDIS_SENTINELS is in the ConfigMap; every container that reads REDIS_URL also gets the
    sentinels' password, or a deployment behind authenticated sentinels half works."""
    assert "REDIS_SENTINELS" in _config(docs)
    for workload, container in containers(docs):
        keys = _secret_keys(container)
        if "REDIS_URL" in keys:
            assert "REDIS_SENTINEL_PASSWORD" in keys, workload["metadata"]["name"]


def test_pods_run_unprivileged_on_a_read_only_root(docs):
    for workload, spec in pod_specs(docs):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        mounts = set()
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert container["resources"]["limits"]["memory"]
            mounts |= {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, workload["metadata"]["name"]  # METRICS_DIR, sandbox scratch


def test_workers_queues_and_shutdown(docs):
    """Each worker consumes the queue its ScaledObject watches, is named <pod>@<node> (health
    counts workers per node), and gets the time to finish a task at the hard limit."""
    settings = Settings(**{"DEFAULT_QUEUE": _config(docs)["DEFAULT_QUEUE"]})
    queues = {
        "mlsp-worker": settings.default_queue,
        "mlsp-batch": settings.batch_queue,
        "mlsp-webhooks": settings.webhook_queue,
    }
    for name, queue in queues.items():
        deployment = find(docs, "Deployment", name)
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["CELERY_QUEUE"].replace("$(DEFAULT_QUEUE)", settings.default_queue) == queue
        assert "--queues=$(CELERY_QUEUE)" in container["command"]
        assert "--hostname=$(POD_NAME)@$(NODE_NAME)" in container["command"]
        wait = int(env["PRESTOP_WAIT_S"])
        assert wait > settings.task_time_limit_s
        assert spec["terminationGracePeriodSeconds"] >= wait + 15
        if name == "mlsp-batch":
            triggers = find(docs, "ScaledObject", name)["spec"]["triggers"]
            assert f'queue="{queue}"' in " ".join(t["metadata"]["query"] for t in triggers)
        port = int(deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])
        assert int(env["WORKER_METRICS_PORT"]) == port
        assert container["ports"][0]["containerPort"] == port


def test_migration_step_applies_all_the_job_needs(docs):
    """docs/operations.md applies `-l 'app.kubernetes.io/component in (config,migrate)'` first,
    waits for the Job, then the rest: that selection must hold the Job and what it reads."""
    first = {
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["metadata"]["labels"].get("app.kubernetes.io/component") in ("config", "migrate")
    }
    assert first == {
        ("Job", "mlsp-migrate"),
        ("ConfigMap", "mlsp-config"),
        ("Secret", "mlsp-secrets"),
        ("ServiceAccount", "mlsp"),
    }


def test_both_workers_share_one_pre_stop(docs):
    """tests/deploy/test_worker_prestop.py runs the worker's against a real worker."""

    def hook(name: str) -> list[str]:
        spec = find(docs, "Deployment", name)["spec"]["template"]["spec"]
        return spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]

    assert hook("mlsp-batch") == hook("mlsp-worker") == hook("mlsp-webhooks")


def test_web_stops_after_its_requests(docs):
    from web.serve import GRACEFUL_STOP_S

    spec = find(docs, "Deployment", "mlsp-web")["spec"]["template"]["spec"]
    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] > GRACEFUL_STOP_S + int(pre_stop[1])
