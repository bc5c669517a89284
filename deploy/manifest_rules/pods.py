"""Rules on the workloads and their pods: schemas, labels, commands, image, security, resources,
probes, termination, scraping, secrets and settings."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from . import model
from .model import (
    COMMANDS,
    CREDENTIALS_IN_URL,
    ENTRYPOINT,
    GUNICORN_COMMANDS,
    HTTP_COMPONENTS,
    KUBERNETES_VERSIONS,
    MAINTENANCE_JOBS,
    MIN_GRACE_SECONDS,
    NAME_LABEL,
    PART_OF,
    POLLER_PORT,
    PORT_VARIABLES,
    SECRET_ENV,
    SECRET_LOOKING_NAME,
    SETTINGS_KEYS,
    Manifests,
    Violation,
    containers,
    name_of,
    pod_metadata,
    pod_spec,
    port_numbers,
    rule,
)

# ---------------------------------------------------------------- schema


@rule("schema")
def schema_rule(m: Manifests) -> Iterator[Violation]:
    """Strict validation (unknown fields refused) against the bundled Kubernetes schemas, offline."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    for resource in m.resources:
        if resource.get("kind") in model.SKIP_SCHEMA_KINDS:
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

