"""Rules every rendered overlay of deploy/ must keep: checkov's generic ones, and our own.

`render(overlay)` runs `kubectl kustomize deploy/overlays/<overlay>`. The generic Kubernetes
checks (non-root, privilege, capabilities, seccomp, read-only root, requests and limits,
probes, image tags) are checkov's: `checkov(named)` runs it once over several sets of
manifests with deploy/checkov.yaml (which says why each skipped check is skipped).
`check(resources, production=...)` returns the violations of our own rules: what checkov
cannot know (our ports, commands and settings, who may reach whom, the public routes) and
the few parts of the "restricted" Pod Security Standard it leaves out. Each rule is a
function `(Manifests) -> Iterable[Violation]` registered with `@rule`; deploy/tests run
both on the overlays and on deliberately broken copies, so a check that stops catching
what it guards fails the tests too.

    .venv/bin/python deploy/manifest_rules.py [dev|prod ...]   # render, validate, report
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import yaml

DEPLOY_DIR = Path(__file__).resolve().parent
OVERLAYS = ("dev", "prod")
ENTRYPOINT = DEPLOY_DIR / "image" / "entrypoint.sh"
CHECKOV_CONFIG = DEPLOY_DIR / "checkov.yaml"

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


# ---------------------------------------------------------------- schema


@rule("schema")
def schema_rule(m: Manifests) -> Iterator[Violation]:
    """Strict validation (unknown fields refused) against the bundled Kubernetes schemas, offline."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    for resource in m.resources:
        if resource.get("kind") in SKIP_SCHEMA_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                yield Violation("schema", name_of(resource), f"Kubernetes {version}: {path}: {exc.message}")
            except SchemaNotFoundError as exc:
                yield Violation("schema", name_of(resource),
                                f"{exc.message}; list the kind in SKIP_SCHEMA_KINDS if it is a CRD on purpose")
                break


@rule("labels")
def labels_rule(m: Manifests) -> Iterator[Violation]:
    key, value = PART_OF
    for resource in m.resources:
        if (resource.get("metadata", {}).get("labels") or {}).get(key) != value:
            yield Violation("labels", name_of(resource), f"missing label {key}={value}")
    for resource in m.workloads():
        labels = pod_metadata(resource).get("labels") or {}
        if labels.get(key) != value or not labels.get(NAME_LABEL):
            yield Violation("labels", name_of(resource), f"pods need labels {key}={value} and {NAME_LABEL}")


# ---------------------------------------------------------------- workloads and image


def entrypoint_commands() -> set[str]:
    """The commands `bobdesk` (deploy/image/entrypoint.sh) knows, from its case branches."""
    return set(re.findall(r"^\s+([a-z][a-z-]*)\)\s", ENTRYPOINT.read_text(), re.M))


@rule("workloads")
def workloads_rule(m: Manifests) -> Iterator[Violation]:
    """The four Deployments and the maintenance CronJobs exist and run their entry point command."""
    known = entrypoint_commands()
    expected = {("Deployment", name): command for name, command in COMMANDS.items()}
    expected |= {("CronJob", name): command for name, command in MAINTENANCE_JOBS.items()}
    for (kind, name), command in expected.items():
        resource = m.get(kind, name)
        if resource is None:
            yield Violation("workloads", f"{kind}/{name}", "missing")
            continue
        for container in pod_spec(resource).get("containers") or []:
            if container.get("command"):
                yield Violation("workloads", name_of(resource),
                                f"container {container.get('name')} overrides the image's entry point (use args)")
            if (container.get("args") or [None])[0] != command:
                yield Violation("workloads", name_of(resource),
                                f"container {container.get('name')} must run `bobdesk {command}`")
    for name, variable in PORT_VARIABLES.items():
        deployment = m.get("Deployment", name)
        expected_port = HTTP_COMPONENTS.get(name, POLLER_PORT)
        for container in (pod_spec(deployment).get("containers") or []) if deployment else []:
            env = {e["name"]: e.get("value") for e in container.get("env") or []}
            if env.get(variable) != str(expected_port) or expected_port not in port_numbers(container).values():
                yield Violation("workloads", name_of(deployment),
                                f"must listen on {variable}={expected_port} and declare that containerPort")
    for resource in m.workloads():
        for container in containers(pod_spec(resource)):
            args = container.get("args") or []
            if not container.get("command") and args and args[0] not in known:
                yield Violation("workloads", name_of(resource), f"`{args[0]}` is not a command of the image")
    for name in MAINTENANCE_JOBS:
        job = m.get("CronJob", name)
        if job is not None and job["spec"].get("suspend") is not True:
            yield Violation("workloads", name_of(job),
                            "must stay suspended: it runs by hand, after a rollout (never on a schedule)")


@rule("image")
def image_rule(m: Manifests) -> Iterator[Violation]:
    """One image for every container (checkov's CKV_K8S_14 pins its tag)."""
    images = {container.get("image") or "" for resource in m.workloads()
              for container in containers(pod_spec(resource))}
    if len(images) > 1:
        yield Violation("image", "workloads", f"one image for every component, found {sorted(images)}")


# ---------------------------------------------------------------- pod security


@rule("pod-security")
def pod_security_rule(m: Manifests) -> Iterator[Violation]:
    """What checkov leaves out of the "restricted" Pod Security Standard.

    checkov accepts a high UID without runAsNonRoot, reads seccomp on the pod only and has
    no check for hostPath volumes; the Namespace must also make the cluster enforce it all.
    """
    for resource in m.workloads():
        where, spec = name_of(resource), pod_spec(resource)
        pod_context = spec.get("securityContext") or {}
        if pod_context.get("runAsNonRoot") is not True:
            yield Violation("pod-security", where, "pod securityContext.runAsNonRoot must be true")
        if any("hostPath" in volume for volume in spec.get("volumes") or []):
            yield Violation("pod-security", where, "hostPath volumes are not allowed")
        pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
        for container in containers(spec):
            context = container.get("securityContext") or {}
            if ((context.get("seccompProfile") or {}).get("type") or pod_seccomp) != "RuntimeDefault":
                yield Violation("pod-security", where,
                                f"container {container.get('name')}: seccompProfile must be RuntimeDefault")
    namespaces = m.of_kind("Namespace")
    if not namespaces:
        yield Violation("pod-security", "Namespace", "the overlay must declare its Namespace")
    for namespace in namespaces:
        if (namespace["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            yield Violation("pod-security", name_of(namespace),
                            "label pod-security.kubernetes.io/enforce=restricted (the cluster enforces it too)")


def emptydir_mounts(spec: Mapping, container: Mapping) -> set[str]:
    emptydirs = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
    return {mount["mountPath"].rstrip("/") or "/" for mount in container.get("volumeMounts") or []
            if mount.get("name") in emptydirs}


@rule("read-only-root")
def read_only_root_rule(m: Manifests) -> Iterator[Violation]:
    """With the root filesystem read-only (checkov's CKV_K8S_22): /tmp an emptyDir, where gunicorn's
    worker files and the metrics directory live."""
    for resource in m.workloads():
        spec = pod_spec(resource)
        for container in containers(spec):
            label = f"container {container.get('name')}"
            if "/tmp" not in emptydir_mounts(spec, container):  # noqa: S108 (the mount point we require)
                yield Violation("read-only-root", name_of(resource), f"{label}: mount an emptyDir at /tmp")
            args = container.get("args") or []
            if args and args[0] in GUNICORN_COMMANDS:
                env = {e["name"]: e.get("value") for e in container.get("env") or []}
                directory = env.get("PROMETHEUS_MULTIPROC_DIR") or ""
                if not any(directory == p or directory.startswith(p + "/") for p in emptydir_mounts(spec, container)):
                    yield Violation("read-only-root", name_of(resource),
                                    f"{label}: PROMETHEUS_MULTIPROC_DIR must lie in a mounted emptyDir (/tmp/...)")


QUANTITY = re.compile(r"^(?P<number>[0-9.]+(?:e[0-9]+)?)(?P<suffix>m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
SUFFIXES = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value) -> float | None:
    match = QUANTITY.match(str(value))
    return float(match["number"]) * SUFFIXES[match["suffix"]] if match else None


@rule("resources")
def resources_rule(m: Manifests) -> Iterator[Violation]:
    """Requests within limits (checkov's CKV_K8S_10 to 13 require both, for CPU and memory)."""
    for resource in m.workloads():
        for container in containers(pod_spec(resource)):
            declared = container.get("resources") or {}
            for kind in ("cpu", "memory"):
                request = (declared.get("requests") or {}).get(kind)
                limit = (declared.get("limits") or {}).get(kind)
                label = f"container {container.get('name')} {kind}"
                if request is None or limit is None:
                    continue
                if quantity(request) is None or quantity(limit) is None or quantity(request) > quantity(limit):
                    yield Violation("resources", name_of(resource), f"{label}: request {request} exceeds limit {limit}")


# ---------------------------------------------------------------- probes, termination, scraping


def port_numbers(container: Mapping) -> dict:
    """Both names and numbers of a container's ports -> number."""
    ports = {}
    for port in container.get("ports") or []:
        ports[port["containerPort"]] = port["containerPort"]
        if port.get("name"):
            ports[port["name"]] = port["containerPort"]
    return ports


@rule("probes")
def probes_rule(m: Manifests) -> Iterator[Violation]:
    """Liveness on /healthz and readiness on /readyz, on a port the container declares."""
    for deployment in m.of_kind("Deployment"):
        for container in pod_spec(deployment).get("containers") or []:
            ports = port_numbers(container)
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                http = (container.get(probe) or {}).get("httpGet") or {}
                if http.get("path") != path or http.get("port") not in ports:
                    yield Violation("probes", name_of(deployment),
                                    f"container {container.get('name')}: {probe} must GET {path} on a declared port")


@rule("termination")
def termination_rule(m: Manifests) -> Iterator[Violation]:
    """A grace period long enough to finish the work in flight (the poller: its batch)."""
    for deployment in m.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        minimum = MIN_GRACE_SECONDS.get(name, 30)
        grace = pod_spec(deployment).get("terminationGracePeriodSeconds")
        if not isinstance(grace, int) or grace < minimum:
            yield Violation("termination", name_of(deployment),
                            f"terminationGracePeriodSeconds must be set, >= {minimum} (is {grace})")


@rule("prometheus")
def prometheus_rule(m: Manifests) -> Iterator[Violation]:
    """Every Deployment's pods announce their /metrics port to Prometheus."""
    for deployment in m.of_kind("Deployment"):
        annotations = pod_metadata(deployment).get("annotations") or {}
        ports = {p for c in pod_spec(deployment).get("containers") or [] for p in port_numbers(c).values()}
        if (annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/path") != "/metrics"
                or not str(annotations.get("prometheus.io/port", "")).isdigit()
                or int(annotations["prometheus.io/port"]) not in ports):
            yield Violation("prometheus", name_of(deployment),
                            "pod annotations prometheus.io/scrape=true, path=/metrics and a declared port")


# ---------------------------------------------------------------- secrets and settings


@rule("secrets")
def secrets_rule(m: Manifests) -> Iterator[Violation]:
    """No secret value in the manifests: secrets only by reference to a Secret made in the cluster."""
    for secret in m.of_kind("Secret"):
        if secret.get("data") or secret.get("stringData"):
            yield Violation("secrets", name_of(secret), "a Secret with values is committed; create it in the cluster")
    for config_map in m.of_kind("ConfigMap"):
        for key, value in (config_map.get("data") or {}).items():
            if SECRET_LOOKING_NAME.search(key) or CREDENTIALS_IN_URL.search(str(value)):
                yield Violation("secrets", name_of(config_map), f"{key} looks secret: it belongs in the Secret")
    for resource in m.workloads():
        for container in containers(pod_spec(resource)):
            label = f"container {container.get('name')}"
            env = {e["name"]: e for e in container.get("env") or []}
            for variable in env.values():
                value = str(variable.get("value", ""))
                if (SECRET_LOOKING_NAME.search(variable["name"]) and "value" in variable) \
                        or CREDENTIALS_IN_URL.search(value):
                    yield Violation("secrets", name_of(resource), f"{label}: {variable['name']} is given in clear")
            for name in SECRET_ENV:
                if not ((env.get(name) or {}).get("valueFrom") or {}).get("secretKeyRef"):
                    yield Violation("secrets", name_of(resource),
                                    f"{label}: {name} must come from a Secret (env valueFrom.secretKeyRef)")


@rule("settings")
def settings_rule(m: Manifests) -> Iterator[Violation]:
    """The non-secret settings from one ConfigMap; ENV=production in production."""
    config_maps = {c["metadata"]["name"]: c.get("data") or {} for c in m.of_kind("ConfigMap")}
    for resource in m.workloads():
        for container in containers(pod_spec(resource)):
            label = f"container {container.get('name')}"
            refs = [e["configMapRef"]["name"] for e in container.get("envFrom") or [] if "configMapRef" in e]
            settings: dict = {}
            for ref in refs:
                settings.update(config_maps.get(ref, {}))
            missing = [key for key in SETTINGS_KEYS if key not in settings]
            if not refs or missing:
                yield Violation("settings", name_of(resource), f"{label}: settings ConfigMap lacks {missing}")
            env = {e["name"]: e for e in container.get("env") or []}
            effective = env["ENV"].get("value") if "ENV" in env else settings.get("ENV")
            if effective not in ("development", "test", "production"):
                yield Violation("settings", name_of(resource), f"{label}: ENV={effective!r} is not a valid ENV")
            elif m.production and effective != "production":
                yield Violation("settings", name_of(resource), f"{label}: production needs ENV=production")


# ---------------------------------------------------------------- Ingress and Services


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


def service_pods(m: Manifests, service: Mapping) -> list[dict]:
    selector = (service.get("spec") or {}).get("selector") or {}
    return [d for d in m.of_kind("Deployment")
            if selector and selects({"matchLabels": selector}, pod_metadata(d).get("labels") or {})]


@rule("services")
def services_rule(m: Manifests) -> Iterator[Violation]:
    """Each HTTP component has a Service selecting its pods only, on its HTTP port."""
    for name, port in HTTP_COMPONENTS.items():
        service = m.get("Service", name)
        if service is None:
            yield Violation("services", f"Service/{name}", "missing")
            continue
        pods = [d["metadata"]["name"] for d in service_pods(m, service)]
        if pods != [name]:
            yield Violation("services", name_of(service), f"must select the pods of {name} only, selects {pods}")
        deployment = m.get("Deployment", name)
        container_ports = port_numbers((pod_spec(deployment)["containers"] or [{}])[0]) if deployment else {}
        targets = [container_ports.get(p.get("targetPort", p.get("port"))) for p in service["spec"].get("ports", [])]
        if port not in targets:
            yield Violation("services", name_of(service), f"must target {name}'s port {port}")


def service_port_ok(m: Manifests, service_name: str, port: Mapping) -> bool:
    service = m.get("Service", service_name)
    if service is None:
        return False
    declared = service["spec"].get("ports") or []
    return any(port.get("name") == p.get("name") if "name" in port else port.get("number") == p.get("port")
               for p in declared)


@rule("ingress")
def ingress_rule(m: Manifests) -> Iterator[Violation]:
    """The Ingress routes exactly the public paths to their Services, nothing internal."""
    ingresses = m.of_kind("Ingress")
    routed: set[str] = set()
    for ingress in ingresses:
        where, spec = name_of(ingress), ingress.get("spec") or {}
        if spec.get("defaultBackend"):
            yield Violation("ingress", where, "no defaultBackend: it would route every other path")
        for key in (ingress["metadata"].get("annotations") or {}):
            if INGRESS_ANNOTATION_FORBIDDEN.search(key):
                yield Violation("ingress", where, f"annotation {key} can route or rewrite beyond the listed paths")
        tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
        for rule_ in spec.get("rules") or []:
            host = rule_.get("host")
            if not host or "*" in host:
                yield Violation("ingress", where, "every rule names its host")
            elif m.production and host not in tls_hosts:
                yield Violation("ingress", where, f"{host} must be served over TLS")
            for path in (rule_.get("http") or {}).get("paths") or []:
                value, backend = path.get("path", "/"), (path.get("backend") or {}).get("service") or {}
                if path.get("pathType") not in ("Prefix", "Exact"):
                    yield Violation("ingress", where, f"{value}: pathType must be Prefix or Exact, never a pattern")
                prefix = value.rstrip("/")
                covered = [p for p in INTERNAL_PATHS if not prefix or prefix == p.rstrip("/")
                           or p.startswith(prefix + "/") or prefix.startswith(p.rstrip("/") + "/")]
                if covered:
                    yield Violation("ingress", where, f"{value} exposes internal paths {covered}")
                elif PUBLIC_ROUTES.get(value.rstrip("/")) is None:
                    yield Violation("ingress", where, f"{value} is not a public route ({sorted(PUBLIC_ROUTES)})")
                elif backend.get("name") != PUBLIC_ROUTES[value.rstrip("/")]:
                    yield Violation("ingress", where,
                                    f"{value} must go to {PUBLIC_ROUTES[value.rstrip('/')]}, not {backend.get('name')}")
                elif not service_port_ok(m, backend["name"], backend.get("port") or {}):
                    yield Violation("ingress", where, f"{value}: no Service {backend['name']} with that port")
                else:
                    routed.add(value.rstrip("/"))
    for missing in sorted(set(PUBLIC_ROUTES) - routed):
        yield Violation("ingress", "Ingress", f"public route {missing} is not routed")


# ---------------------------------------------------------------- availability


@rule("availability")
def availability_rule(m: Manifests) -> Iterator[Violation]:
    """Every Deployment: an HPA from at least two pods, a PDB that protects it without blocking drains."""
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in m.of_kind("HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"}
    for deployment in m.of_kind("Deployment"):
        name, where = deployment["metadata"]["name"], name_of(deployment)
        who = "pollers (the leases make more safe; one down must not stop ingestion)" if name == POLLER else "pods"
        replicas = deployment["spec"].get("replicas")
        if replicas is not None and replicas < MIN_REPLICAS:
            yield Violation("availability", where, f"at least {MIN_REPLICAS} {who}, replicas is {replicas}")
        hpa = hpas.get(name)
        minimum = (hpa or {}).get("spec", {}).get("minReplicas", 1)
        if hpa is None:
            yield Violation("availability", where, "needs a HorizontalPodAutoscaler")
        elif minimum < MIN_REPLICAS or hpa["spec"].get("maxReplicas", 0) < minimum:
            yield Violation("availability", name_of(hpa),
                            f"minReplicas must be >= {MIN_REPLICAS} {who}, maxReplicas >= minReplicas")
        labels = pod_metadata(deployment).get("labels") or {}
        budgets = [p for p in m.of_kind("PodDisruptionBudget") if selects(p["spec"].get("selector"), labels)]
        if not budgets:
            yield Violation("availability", where, "needs a PodDisruptionBudget selecting its pods")
        for budget in budgets:
            spec = budget["spec"]
            max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
            if max_unavailable is not None:
                blocks = max_unavailable in (0, "0%", "0")
            else:
                blocks = min_available is None or (isinstance(min_available, int) and min_available >= minimum) \
                    or min_available == "100%"
            if blocks:
                yield Violation("availability", name_of(budget), "must allow one eviction (node drains)")


# ---------------------------------------------------------------- network policies


@dataclasses.dataclass(frozen=True)
class Pod:
    """A pod as NetworkPolicies see it."""

    name: str
    namespace: str
    labels: Mapping
    namespace_labels: Mapping
    ports: Mapping = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Address:
    """An address outside the cluster."""

    ip: str


def peer_matches(peer: Mapping, policy_namespace: str, other: Pod | Address) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, Address):
            return False
        ip, block = ipaddress.ip_address(other.ip), peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(excluded) for excluded in block.get("except") or [])
    if isinstance(other, Address):
        return False
    if "namespaceSelector" in peer:
        namespace_ok = selects(peer["namespaceSelector"], other.namespace_labels)
    else:
        namespace_ok = other.namespace == policy_namespace
    return namespace_ok and ("podSelector" not in peer or selects(peer["podSelector"], other.labels))


def port_matches(ports: list | None, port: int, destination: Pod | Address, protocol: str = "TCP") -> bool:
    if not ports:
        return True
    for allowed in ports:
        if allowed.get("protocol", "TCP") != protocol:
            continue
        number = allowed.get("port")
        if isinstance(number, str):
            number = destination.ports.get(number) if isinstance(destination, Pod) else None
        if allowed.get("port") is None or number == port or (
                number is not None and allowed.get("endPort") and number <= port <= allowed["endPort"]):
            return True
    return False


def policy_types(policy: Mapping) -> list[str]:
    spec = policy.get("spec") or {}
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def permitted(policies: list[dict], direction: str, subject: Pod, peer: Pod | Address,
              port: int, destination: Pod | Address) -> bool:
    """Whether the policies selecting `subject` let this connection through in `direction`."""
    relevant = [p for p in policies if (p["metadata"].get("namespace") or "default") == subject.namespace
                and selects(p["spec"].get("podSelector"), subject.labels) and direction in policy_types(p)]
    if not relevant:
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in relevant:
        for entry in policy["spec"].get(rules_key) or []:
            peers = entry.get(peers_key)
            namespace = policy["metadata"].get("namespace") or "default"
            if (not peers or any(peer_matches(p, namespace, peer) for p in peers)) and \
                    port_matches(entry.get("ports"), port, destination):
                return True
    return False


def reachable(policies: list[dict], source: Pod, destination: Pod | Address, port: int) -> bool:
    egress = permitted(policies, "Egress", source, destination, port, destination)
    ingress = isinstance(destination, Address) or permitted(policies, "Ingress", destination, source, port, destination)
    return egress and ingress


def our_pods(m: Manifests) -> list[Pod]:
    pods = []
    for resource in m.workloads():
        namespace = resource["metadata"].get("namespace") or "default"
        ports = {}
        for container in pod_spec(resource).get("containers") or []:
            ports.update(port_numbers(container))
        labels = pod_metadata(resource).get("labels") or {}
        pods.append(Pod(resource["metadata"]["name"], namespace, labels, m.namespace_labels(namespace), ports))
    return pods


def mongo_destinations(m: Manifests, namespace: str) -> list[Pod | Address]:
    """One sample destination per peer the policies open on the MongoDB port."""
    samples: list[Pod | Address] = []
    for policy in m.of_kind("NetworkPolicy"):
        for entry in policy["spec"].get("egress") or []:
            if not entry.get("ports") or not port_matches(entry["ports"], MONGO_PORT, Address("0.0.0.0")):
                continue
            for peer in entry.get("to") or []:
                if "ipBlock" in peer:
                    network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                    samples.append(Address(str(network[1] if network.num_addresses > 1 else network[0])))
                else:
                    ns_labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
                    ns = ns_labels.get("kubernetes.io/metadata.name", namespace if not ns_labels else "mongodb")
                    samples.append(Pod("mongodb", ns, (peer.get("podSelector") or {}).get("matchLabels") or {},
                                       {"kubernetes.io/metadata.name": ns, **ns_labels}))
    return samples


@rule("network")
def network_rule(m: Manifests) -> Iterator[Violation]:
    """Deny by default; internal endpoints reachable from their callers only; the database from our pods only."""
    policies = m.of_kind("NetworkPolicy")
    if not any(p["spec"].get("podSelector") == {} and set(policy_types(p)) >= {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies):
        yield Violation("network", "NetworkPolicy", "a default-deny policy (podSelector {}, Ingress and Egress)")
    for policy in policies:
        for entry in policy["spec"].get("ingress") or []:
            peers = entry.get("from")
            if not peers or any("ipBlock" in p or p.get("namespaceSelector") == {} for p in peers):
                yield Violation("network", name_of(policy), "an ingress rule open to any namespace or address")
        for entry in policy["spec"].get("egress") or []:
            if not entry.get("ports"):
                yield Violation("network", name_of(policy), "every egress rule names its ports")
            if port_matches(entry.get("ports"), MONGO_PORT, Address("0.0.0.0")):
                for peer in entry.get("to") or [{}]:
                    cidr = (peer.get("ipBlock") or {}).get("cidr")
                    broad = ipaddress.ip_network(cidr).prefixlen < 8 if cidr else not (peer.get("podSelector") or {})
                    if broad:
                        yield Violation("network", name_of(policy),
                                        f"egress on the MongoDB port {MONGO_PORT} must name the replica set")

    pods = our_pods(m)
    if not pods:
        return
    namespace = pods[0].namespace
    elsewhere = {"kubernetes.io/metadata.name": "elsewhere"}
    strangers = [
        Pod("a stranger pod in the namespace", namespace, {"app": "stranger"}, m.namespace_labels(namespace)),
        Pod("a pod of another namespace", "elsewhere", {"app": "stranger"}, elsewhere),
        Pod(f"a pod labelled {POLLER} in another namespace", "elsewhere", {NAME_LABEL: POLLER}, elsewhere),
    ]
    components = {pod.name: pod for pod in pods if pod.name in CALLERS}
    for destination in components.values():
        for port in sorted({p for p in destination.ports.values()}):
            for source in pods + strangers:
                if source is destination:
                    continue
                expected = source in pods and source.name in CALLERS[destination.name]
                # The destination's own policy must refuse the others, whatever their egress
                # policies say (a pod added later may have looser ones).
                let_in = permitted(policies, "Ingress", destination, source, port, destination)
                if let_in and not expected:
                    yield Violation("network", f"{destination.name}:{port}", f"lets in {source.name}")
                elif expected and not reachable(policies, source, destination, port):
                    yield Violation("network", f"{destination.name}:{port}", f"{source.name} needs to reach it")

    databases = mongo_destinations(m, namespace)
    for source in pods:
        if not any(reachable(policies, source, db, MONGO_PORT) for db in databases):
            yield Violation("network", source.name, f"no egress to MongoDB (port {MONGO_PORT})")
    for source in strangers[:1]:
        if any(reachable(policies, source, db, MONGO_PORT) for db in databases):
            yield Violation("network", "MongoDB", f"reachable from {source.name}")
    provider = Address(SAMPLE_PUBLIC_IP)
    for source in pods + strangers[:1]:
        allowed = reachable(policies, source, provider, 443)
        if allowed and source.name not in PROVIDER_CALLERS:
            yield Violation("network", source.name, "reaches the internet (only the worker pods call the provider)")
        elif not allowed and source in pods and source.name in PROVIDER_CALLERS:
            yield Violation("network", source.name, "needs HTTPS egress to the provider's API")


# ---------------------------------------------------------------- checkov


def checkov_binary() -> str:
    """CHECKOV, or the one `make install` puts in its own virtualenv beside the project's."""
    return os.environ.get("CHECKOV") or str(Path(sys.prefix) / "checkov" / "bin" / "checkov")


def checkov(named: Mapping[str, list[dict]]) -> dict[str, list[Violation]]:
    """checkov's failed checks for each named set of manifests, all in one run (checkov is slow to start).

    A violation's rule is the check id (CKV_K8S_...), `where` the resource checkov names.
    """
    binary = checkov_binary()
    with tempfile.TemporaryDirectory(prefix="checkov-") as directory:
        for name, resources in named.items():
            Path(directory, f"{name}.yaml").write_text(yaml.safe_dump_all(resources, sort_keys=False))
        try:
            done = subprocess.run([binary, "--config-file", str(CHECKOV_CONFIG), "--directory", directory],
                                  capture_output=True, text=True, timeout=600, check=False)
        except FileNotFoundError:
            raise RenderError(f"{binary} not found: `make install` installs checkov (or set CHECKOV)") from None
    if done.returncode not in (0, 1):  # 1: some check failed
        raise RenderError(f"checkov failed ({done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    found: dict[str, list[Violation]] = {name: [] for name in named}
    for failed in report["results"]["failed_checks"]:
        found[Path(failed["file_path"]).stem].append(Violation(failed["check_id"], failed["resource"],
                                                               failed["check_name"]))
    return found


# ---------------------------------------------------------------- command line


def main(argv: list[str]) -> int:
    failed = False
    overlays = {overlay: render(overlay) for overlay in argv or OVERLAYS}
    generic = checkov(overlays)
    for overlay, resources in overlays.items():
        violations = check(resources, production=overlay == "prod") + generic[overlay]
        for violation in violations:
            print(f"overlays/{overlay}: {violation}")
        print(f"overlays/{overlay}: {'FAILED' if violations else 'ok'} ({len(RULES)} rules and checkov's checks)")
        failed |= bool(violations)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
