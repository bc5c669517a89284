"""The rendered manifests as the rules see them, the constants the rules hold them to, the registry.

`render(overlay)` runs `kubectl kustomize deploy/overlays/<overlay>`; `check(resources,
production=...)` runs every rule registered with `@rule` over them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import yaml

DEPLOY_DIR = Path(__file__).resolve().parent.parent
OVERLAYS = ("dev", "prod")
ENTRYPOINT = DEPLOY_DIR / "image" / "entrypoint.sh"

# Schemas: the oldest Kubernetes we support and the newest the validator knows, so an
# API removed or added in between is caught. Kinds without a core schema (CRDs such as
# ServiceMonitor) must be listed here explicitly to be let through unvalidated.
KUBERNETES_VERSIONS = ("1.30", "1.37")
SKIP_SCHEMA_KINDS: frozenset[str] = frozenset()

PART_OF = ("app.kubernetes.io/part-of", "bobdesk")
NAME_LABEL = "app.kubernetes.io/name"

# The HTTP components (Deployment and Service name -> port) and the poller (no Service;
# /metrics, /healthz, /readyz on WORKER_METRICS_PORT 8004).
HTTP_COMPONENTS = {"connections-service": 8001, "invoices-service": 8002, "ingest-webhooks": 8003}
POLLER = "ingest-poller"
POLLER_PORT = 8004
# The variable each Deployment's process listens on.
PORT_VARIABLES = {**dict.fromkeys(HTTP_COMPONENTS, "PORT"), POLLER: "WORKER_METRICS_PORT"}
# Each Deployment -> the image command it runs (`bobdesk <command>`).
COMMANDS = {
    "connections-service": "connections-service",
    "invoices-service": "invoices-service",
    "ingest-webhooks": "webhooks",
    POLLER: "poller",
}
GUNICORN_COMMANDS = {COMMANDS[name] for name in HTTP_COMPONENTS}
# Suspended CronJobs run by hand (`kubectl create job --from=cronjob/<name>`).
MAINTENANCE_JOBS = {
    "rotate-keys": "rotate-keys",
    "ensure-indexes-connections": "ensure-indexes-connections",
    "ensure-indexes-invoices": "ensure-indexes-invoices",
    "ensure-indexes-ingest": "ensure-indexes-ingest",
}

MIN_REPLICAS = 2
# SIGTERM -> the poller finishes its batch (one provider request of up to ~23 s, the
# store, the release) and joins its webhook processor (30 s); gunicorn gets preStop 5 s
# + its graceful timeout (25 s).
MIN_GRACE_SECONDS = {POLLER: 90, **dict.fromkeys(HTTP_COMPONENTS, 30)}

SECRET_ENV = ("MONGO_URI", "JWT_SECRET", "SERVICE_JWT_SECRET", "CREDENTIALS_KEYS")
# The non-secret settings every component reads, from one ConfigMap.
SETTINGS_KEYS = ("ENV", "CONNECTIONS_DB", "INVOICES_DB", "INGEST_DB", "PLATFORM_DB", "YOOZ_BASE_URL",
                 "CONNECTIONS_URL", "INVOICES_URL", "POLL_INTERVAL_SECONDS", "PUBLIC_API_RATE_LIMIT")
SECRET_LOOKING_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|_KEYS?$|^MONGO_URI$", re.I)
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s:]+:[^/@\s]+@")

# What the Ingress may route: path -> Service. Anything else (/internal/, /metrics,
# /healthz, /readyz, /docs, /openapi.json, /) stays inside the cluster.
PUBLIC_ROUTES = {
    "/api/v3.0/invoices": "invoices-service",
    "/invoices": "invoices-service",
    "/invoice-connections": "connections-service",
    "/webhooks": "ingest-webhooks",
}
INTERNAL_PATHS = ("/internal/", "/metrics", "/healthz", "/readyz", "/docs", "/openapi.json")
# Annotations with which an ingress controller can route or rewrite beyond the paths.
INGRESS_ANNOTATION_FORBIDDEN = re.compile(r"snippet|rewrite-target|use-regex|default-backend|custom-http-errors")

# Which of our pods may open a connection to which component's port (docs/internal-api.md):
# the worker pods call both services; invoices-service calls authorize-ingest.
CALLERS = {
    "connections-service": {POLLER, "ingest-webhooks", "invoices-service"},
    "invoices-service": {POLLER, "ingest-webhooks"},
    "ingest-webhooks": set(),
    POLLER: set(),
}
# Pods that reach the provider's API (HTTPS on the internet).
PROVIDER_CALLERS = {POLLER, "ingest-webhooks"}
MONGO_PORT = 27017
SAMPLE_PUBLIC_IP = "203.0.113.7"  # a documentation address standing for the provider

POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


@dataclasses.dataclass(frozen=True)
class Violation:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message}"


# ---------------------------------------------------------------- rendering and model


class RenderError(RuntimeError):
    pass


def render(overlay: str) -> list[dict]:
    """The overlay's manifests, as `kubectl kustomize` renders them (KUBECTL overrides the binary)."""
    kubectl = os.environ.get("KUBECTL", "kubectl")
    try:
        done = subprocess.run([kubectl, "kustomize", str(DEPLOY_DIR / "overlays" / overlay)],
                              capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise RenderError(f"{kubectl} not found: install kubectl (it bundles kustomize) or set KUBECTL") from None
    if done.returncode != 0:
        raise RenderError(f"kubectl kustomize overlays/{overlay} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def name_of(resource: Mapping) -> str:
    return f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"


def pod_spec(resource: Mapping) -> dict | None:
    kind, spec = resource.get("kind"), resource.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec")
    if kind in POD_KINDS:
        return (spec.get("template") or {}).get("spec")
    return None


def pod_metadata(resource: Mapping) -> dict:
    spec = resource.get("spec") or {}
    if resource.get("kind") == "Pod":
        return resource.get("metadata") or {}
    if resource.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("metadata") or {}


def containers(spec: Mapping) -> list[dict]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


class Manifests:
    """Rendered resources, indexed the way the rules need them."""

    def __init__(self, resources: Iterable[dict], *, production: bool):
        self.resources = [r for r in resources if r]
        self.production = production

    def of_kind(self, kind: str) -> list[dict]:
        return [r for r in self.resources if r.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict | None:
        return next((r for r in self.of_kind(kind) if r["metadata"].get("name") == name), None)

    def workloads(self) -> list[dict]:
        return [r for r in self.resources if pod_spec(r) is not None]

    def namespace_labels(self, namespace: str) -> dict:
        found = next((r for r in self.of_kind("Namespace") if r["metadata"].get("name") == namespace), None)
        labels = dict((found or {}).get("metadata", {}).get("labels") or {})
        labels["kubernetes.io/metadata.name"] = namespace
        return labels


Rule = Callable[[Manifests], Iterable[Violation]]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        RULES[name] = function
        return function
    return register


def check(resources: Iterable[dict], *, production: bool, schemas: bool = True,
          only: Iterable[str] | None = None) -> list[Violation]:
    """Every violation of the rules (`only`: a subset by name; `schemas=False` skips the slow one)."""
    manifests = Manifests(resources, production=production)
    names = list(only) if only is not None else [n for n in RULES if schemas or n != "schema"]
    return list(dict.fromkeys(violation for name in names for violation in RULES[name](manifests)))



def selects(selector: Mapping | None, labels: Mapping) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against `labels`."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True



def port_numbers(container: Mapping) -> dict:
    """Both names and numbers of a container's ports -> number."""
    ports = {}
    for port in container.get("ports") or []:
        ports[port["containerPort"]] = port["containerPort"]
        if port.get("name"):
            ports[port["name"]] = port["containerPort"]
    return ports

