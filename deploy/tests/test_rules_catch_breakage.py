"""Each rule catches the breakage it guards against: every case below breaks a copy of a
rendered overlay in one way and expects the named rule (ours) or check (checkov's CKV_K8S_...)
to report it. A rule that stopped catching (or a manifest that passed by accident) fails here.
checkov runs once for every case of its own (conftest.py), so the cases cost one start."""

import copy

import manifest_rules
import pytest

HTTP = "connections-service"


def find(resources, kind, name):
    return next(r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name)


def remove(resources, kind, name):
    resources.remove(find(resources, kind, name))


def pod(resources, kind, name):
    return manifest_rules.pod_spec(find(resources, kind, name))


def container(resources, name, kind="Deployment"):
    return pod(resources, kind, name)["containers"][0]


def env(resources, name, variable, kind="Deployment"):
    return next(e for e in container(resources, name, kind)["env"] if e["name"] == variable)


def settings(resources):
    return next(r for r in resources if r["kind"] == "ConfigMap")["data"]


def policy(resources, name):
    return find(resources, "NetworkPolicy", name)["spec"]


def ingress_paths(resources):
    return find(resources, "Ingress", "bobdesk")["spec"]["rules"][0]["http"]["paths"]


def route(path, service, port_name="http", path_type="Prefix"):
    return {"path": path, "pathType": path_type,
            "backend": {"service": {"name": service, "port": {"name": port_name}}}}


def annotate(resources, key, value):
    ingress = find(resources, "Ingress", "bobdesk")
    ingress["metadata"].setdefault("annotations", {})[key] = value


def set_in(mapping, key, value):
    mapping[key] = value


def pod_labels(name):
    return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}


# (rule expected to fire, what is broken, the breakage)
BREAKAGES = [
    # labels
    ("labels", "Service without part-of label",
     lambda r: find(r, "Service", HTTP)["metadata"]["labels"].pop("app.kubernetes.io/part-of")),
    # workloads and image
    ("workloads", "no poller Deployment", lambda r: remove(r, "Deployment", "ingest-poller")),
    ("workloads", "command overrides the entry point",
     lambda r: set_in(container(r, HTTP), "command", ["gunicorn", "connections_service.app:create_app()"])),
    ("workloads", "a command the image does not know",
     lambda r: set_in(container(r, "ingest-poller"), "args", ["poll"])),
    ("workloads", "the poller runs the webhooks",
     lambda r: set_in(container(r, "ingest-poller"), "args", ["webhooks"])),
    ("workloads", "rotate-keys would run by itself", lambda r: set_in(find(r, "CronJob", "rotate-keys")["spec"],
                                                                       "suspend", False)),
    ("workloads", "no ensure-indexes Job for the worker", lambda r: remove(r, "CronJob", "ensure-indexes-ingest")),
    ("workloads", "the poller's metrics on another port",
     lambda r: set_in(env(r, "ingest-poller", "WORKER_METRICS_PORT"), "value", "9000")),
    ("workloads", "gunicorn on a port the pod does not declare",
     lambda r: set_in(env(r, "invoices-service", "PORT"), "value", "8001")),
    ("CKV_K8S_14", "latest tag",
     lambda r: set_in(container(r, HTTP), "image", "ghcr.io/bobdesk/invoice-platform:latest")),
    ("CKV_K8S_14", "untagged image", lambda r: set_in(container(r, HTTP), "image", "ghcr.io/bobdesk/invoice-platform")),
    ("image", "two images", lambda r: set_in(container(r, "ingest-poller"), "image", "ghcr.io/other/poller:1")),
    # pod security
    ("pod-security", "runAsNonRoot dropped",
     lambda r: pod(r, "Deployment", HTTP)["securityContext"].pop("runAsNonRoot")),
    ("CKV_K8S_40", "container as root", lambda r: set_in(container(r, HTTP)["securityContext"], "runAsUser", 0)),
    ("CKV_K8S_20", "privilege escalation",
     lambda r: set_in(container(r, "invoices-service")["securityContext"], "allowPrivilegeEscalation", True)),
    ("CKV_K8S_37", "capabilities kept",
     lambda r: container(r, "ingest-webhooks")["securityContext"].pop("capabilities")),
    ("CKV_K8S_25", "a capability added",
     lambda r: set_in(container(r, "ingest-webhooks")["securityContext"]["capabilities"], "add", ["NET_ADMIN"])),
    ("CKV_K8S_31", "no seccomp profile", lambda r: pod(r, "Deployment", "ingest-poller")["securityContext"]
     .pop("seccompProfile")),
    ("pod-security", "Unconfined seccomp on a container",
     lambda r: set_in(container(r, HTTP)["securityContext"], "seccompProfile", {"type": "Unconfined"})),
    ("CKV_K8S_16", "privileged", lambda r: set_in(container(r, HTTP)["securityContext"], "privileged", True)),
    ("CKV_K8S_19", "host network", lambda r: set_in(pod(r, "Deployment", HTTP), "hostNetwork", True)),
    ("CKV_K8S_17", "host PID", lambda r: set_in(pod(r, "Deployment", HTTP), "hostPID", True)),
    ("pod-security", "hostPath volume", lambda r: pod(r, "Deployment", HTTP)["volumes"].append(
        {"name": "host", "hostPath": {"path": "/var/run"}})),
    ("CKV_K8S_38", "API token mounted", lambda r: pod(r, "Deployment", HTTP).pop("automountServiceAccountToken")),
    ("CKV_K8S_30", "a maintenance Job without security context",
     lambda r: container(r, "rotate-keys", "CronJob").pop("securityContext")),
    ("pod-security", "namespace without the restricted standard",
     lambda r: next(x for x in r if x["kind"] == "Namespace")["metadata"]["labels"]
     .pop("pod-security.kubernetes.io/enforce")),
    # read-only root filesystem and /tmp
    ("CKV_K8S_22", "writable root filesystem",
     lambda r: set_in(container(r, "ingest-poller")["securityContext"], "readOnlyRootFilesystem", False)),
    ("read-only-root", "no /tmp mount", lambda r: container(r, HTTP).pop("volumeMounts")),
    ("read-only-root", "/tmp not an emptyDir",
     lambda r: set_in(pod(r, "Deployment", HTTP), "volumes", [{"name": "tmp", "configMap": {"name": "x"}}])),
    ("read-only-root", "metrics directory outside /tmp",
     lambda r: set_in(env(r, "invoices-service", "PROMETHEUS_MULTIPROC_DIR"), "value", "/var/prometheus")),
    ("read-only-root", "metrics directory unset", lambda r: container(r, "ingest-webhooks")["env"].remove(
        env(r, "ingest-webhooks", "PROMETHEUS_MULTIPROC_DIR"))),
    # resources
    ("CKV_K8S_11", "no cpu limit", lambda r: container(r, "ingest-poller")["resources"]["limits"].pop("cpu")),
    ("CKV_K8S_13", "no memory limit", lambda r: container(r, "ingest-poller")["resources"]["limits"].pop("memory")),
    ("CKV_K8S_12", "no memory request", lambda r: container(r, HTTP)["resources"]["requests"].pop("memory")),
    ("resources", "request above limit",
     lambda r: set_in(container(r, HTTP)["resources"]["requests"], "memory", "1Gi")),
    ("CKV_K8S_10", "Job without cpu request",
     lambda r: container(r, "ensure-indexes-invoices", "CronJob")["resources"]["requests"].pop("cpu")),
    # probes, termination, scraping
    ("probes", "liveness not on /healthz",
     lambda r: set_in(container(r, HTTP)["livenessProbe"]["httpGet"], "path", "/")),
    ("CKV_K8S_9", "poller without readiness", lambda r: container(r, "ingest-poller").pop("readinessProbe")),
    ("CKV_K8S_8", "a service without liveness", lambda r: container(r, HTTP).pop("livenessProbe")),
    ("probes", "readiness on an undeclared port",
     lambda r: set_in(container(r, "invoices-service")["readinessProbe"]["httpGet"], "port", 9999)),
    ("termination", "poller killed before its batch ends",
     lambda r: set_in(pod(r, "Deployment", "ingest-poller"), "terminationGracePeriodSeconds", 30)),
    ("termination", "default grace period", lambda r: pod(r, "Deployment", "invoices-service")
     .pop("terminationGracePeriodSeconds")),
    ("prometheus", "not scraped", lambda r: manifest_rules.pod_metadata(find(r, "Deployment", HTTP))["annotations"]
     .pop("prometheus.io/scrape")),
    ("prometheus", "scraped on the wrong port", lambda r: set_in(
        manifest_rules.pod_metadata(find(r, "Deployment", "ingest-poller"))["annotations"],
        "prometheus.io/port", "8003")),
    # secrets and settings
    ("secrets", "a Secret committed with its values", lambda r: r.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bobdesk-secrets"},
         "stringData": {"JWT_SECRET": "s3cret"}})),
    ("secrets", "JWT_SECRET in clear", lambda r: set_in(env(r, HTTP, "JWT_SECRET"), "value", "s3cret")
     or env(r, HTTP, "JWT_SECRET").pop("valueFrom")),
    ("secrets", "MONGO_URI with a password in the ConfigMap",
     lambda r: set_in(settings(r), "MONGO_URI", "mongodb+srv://app:pw@cluster0.example.net/")),
    ("secrets", "a password in a URL", lambda r: set_in(settings(r), "YOOZ_BASE_URL", "https://u:p@yooz.example")),
    ("secrets", "CREDENTIALS_KEYS not given", lambda r: container(r, "ingest-webhooks")["env"].remove(
        env(r, "ingest-webhooks", "CREDENTIALS_KEYS"))),
    ("secrets", "a Job's MONGO_URI in clear", lambda r: container(r, "rotate-keys", "CronJob")["env"].__setitem__(
        0, {"name": "MONGO_URI", "value": "mongodb://root:root@db:27017/"})),
    ("settings", "prod in development mode", lambda r: set_in(settings(r), "ENV", "development")),
    ("settings", "ENV overridden on a container",
     lambda r: container(r, "invoices-service")["env"].append({"name": "ENV", "value": "development"})),
    ("settings", "a shared setting missing", lambda r: settings(r).pop("YOOZ_BASE_URL")),
    ("settings", "no settings ConfigMap", lambda r: container(r, "ingest-poller").pop("envFrom")),
    # Services and Ingress
    ("services", "no Service for the receiver", lambda r: remove(r, "Service", "ingest-webhooks")),
    ("services", "Service selecting every pod",
     lambda r: set_in(find(r, "Service", HTTP)["spec"], "selector", {"app.kubernetes.io/part-of": "bobdesk"})),
    ("services", "Service on the wrong port",
     lambda r: set_in(find(r, "Service", "invoices-service")["spec"]["ports"][0], "targetPort", 8001)),
    ("ingress", "/internal routed", lambda r: ingress_paths(r).append(route("/internal", HTTP))),
    ("ingress", "/internal/connections routed",
     lambda r: ingress_paths(r).append(route("/internal/connections", HTTP, path_type="Exact"))),
    ("ingress", "everything routed", lambda r: ingress_paths(r).append(route("/", "invoices-service"))),
    ("ingress", "/metrics routed", lambda r: ingress_paths(r).append(route("/metrics", "invoices-service"))),
    ("ingress", "/docs routed", lambda r: ingress_paths(r).append(route("/docs", "invoices-service"))),
    ("ingress", "/openapi.json routed", lambda r: ingress_paths(r).append(route("/openapi.json", HTTP))),
    ("ingress", "an unlisted path", lambda r: ingress_paths(r).append(route("/api", "invoices-service"))),
    ("ingress", "a route to the wrong service",
     lambda r: set_in(ingress_paths(r)[1]["backend"]["service"], "name", HTTP)),
    ("ingress", "a backend port the Service lacks",
     lambda r: set_in(ingress_paths(r)[0]["backend"]["service"], "port", {"name": "metrics"})),
    ("ingress", "a regex path", lambda r: set_in(ingress_paths(r)[0], "pathType", "ImplementationSpecific")),
    ("ingress", "a default backend", lambda r: set_in(find(r, "Ingress", "bobdesk")["spec"], "defaultBackend",
                                                      {"service": {"name": HTTP, "port": {"name": "http"}}})),
    ("ingress", "a configuration snippet",
     lambda r: annotate(r, "nginx.ingress.kubernetes.io/configuration-snippet", "location /internal/ {}")),
    ("ingress", "a rewrite", lambda r: annotate(r, "nginx.ingress.kubernetes.io/rewrite-target", "/internal/$1")),
    ("ingress", "webhooks not routed", lambda r: ingress_paths(r).pop(3)),
    ("ingress", "no TLS in production", lambda r: find(r, "Ingress", "bobdesk")["spec"].pop("tls")),
    ("ingress", "a catch-all host", lambda r: find(r, "Ingress", "bobdesk")["spec"]["rules"][0].pop("host")),
    # availability
    ("availability", "no autoscaler for the poller", lambda r: remove(r, "HorizontalPodAutoscaler", "ingest-poller")),
    ("availability", "a single poller",
     lambda r: set_in(find(r, "HorizontalPodAutoscaler", "ingest-poller")["spec"], "minReplicas", 1)),
    ("availability", "a single poller replica", lambda r: set_in(find(r, "Deployment", "ingest-poller")["spec"],
                                                                 "replicas", 1)),
    ("availability", "maxReplicas below minReplicas",
     lambda r: set_in(find(r, "HorizontalPodAutoscaler", HTTP)["spec"], "maxReplicas", 1)),
    ("availability", "no disruption budget", lambda r: remove(r, "PodDisruptionBudget", "invoices-service")),
    ("availability", "a budget that blocks drains",
     lambda r: set_in(find(r, "PodDisruptionBudget", "ingest-webhooks")["spec"], "maxUnavailable", 0)),
    ("availability", "a budget selecting nothing", lambda r: set_in(
        find(r, "PodDisruptionBudget", "ingest-poller")["spec"], "selector", {"matchLabels": {"x": "y"}})),
    # network
    ("network", "no default deny", lambda r: remove(r, "NetworkPolicy", "default-deny")),
    ("network", "internal port open to every pod of the namespace",
     lambda r: policy(r, HTTP)["ingress"].append({"from": [{"podSelector": {}}]})),
    ("network", "an ingress rule open to all",
     lambda r: policy(r, "invoices-service")["ingress"].append({"ports": [{"port": 8002}]})),
    ("network", "an ingress rule open to every namespace",
     lambda r: policy(r, "invoices-service")["ingress"][1]["from"].append({"namespaceSelector": {}})),
    ("network", "an ingress rule open to addresses",
     lambda r: policy(r, "ingest-webhooks")["ingress"].append({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]})),
    ("network", "worker peer matched in any namespace",
     lambda r: set_in(policy(r, HTTP)["ingress"][1]["from"][0], "namespaceSelector", {"matchLabels": {}})),
    ("network", "invoices-service cut from authorize-ingest", lambda r: policy(r, HTTP)["ingress"][1]["from"].pop(2)),
    ("network", "connections-service may call invoices-service's internal API", lambda r: (
        policy(r, "invoices-service")["ingress"][1]["from"].append(pod_labels(HTTP)),
        find(r, "NetworkPolicy", HTTP)["spec"].update(policyTypes=["Ingress", "Egress"], egress=[
            {"to": [pod_labels("invoices-service")], "ports": [{"port": 8002}]}]))),
    ("network", "the poller cut from invoices-service", lambda r: policy(r, "ingest-poller")["egress"].pop(1)),
    ("network", "an egress rule without ports",
     lambda r: policy(r, "ingest-poller")["egress"].append({"to": [pod_labels("invoices-service")]})),
    ("network", "MongoDB egress to the whole internet",
     lambda r: set_in(policy(r, "allow-mongodb")["egress"][0], "to", [{"ipBlock": {"cidr": "0.0.0.0/0"}}])),
    ("network", "MongoDB reachable from any pod of the namespace",
     lambda r: set_in(policy(r, "allow-mongodb"), "podSelector", {})),
    ("network", "no MongoDB egress", lambda r: remove(r, "NetworkPolicy", "allow-mongodb")),
    ("network", "the receiver cannot reach the provider", lambda r: policy(r, "ingest-webhooks")["egress"].pop(2)),
    ("network", "invoices-service on the internet", lambda r: policy(r, "invoices-service")["egress"].append(
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]})),
]


OURS = [(rule, what, fn) for rule, what, fn in BREAKAGES if rule in manifest_rules.RULES]
CHECKOVS = [(check, what, fn) for check, what, fn in BREAKAGES if check.startswith("CKV_")]


@pytest.mark.parametrize(("expected_rule", "breakage"), [(rule, fn) for rule, _, fn in OURS],
                         ids=[f"{rule}: {what}" for rule, what, _ in OURS])
def test_rule_catches_breakage(rendered, expected_rule, breakage):
    resources = copy.deepcopy(rendered["prod"])
    breakage(resources)
    violations = manifest_rules.check(resources, production=True, schemas=False)
    assert expected_rule in {v.rule for v in violations}, f"not caught; reported: {[str(v) for v in violations]}"


@pytest.fixture(scope="module")
def checkov_on_breakages(rendered, checkov_found):
    """checkov's findings on every broken copy of prod, from one run."""
    broken = {}
    for index, (_, _, breakage) in enumerate(CHECKOVS):
        broken[f"case-{index}"] = resources = copy.deepcopy(rendered["prod"])
        breakage(resources)
    return manifest_rules.checkov(broken)


@pytest.mark.parametrize(("index", "expected_check"), [(index, check) for index, (check, _, _) in enumerate(CHECKOVS)],
                         ids=[f"{check}: {what}" for check, what, _ in CHECKOVS])
def test_checkov_catches_breakage(checkov_on_breakages, index, expected_check):
    found = checkov_on_breakages[f"case-{index}"]
    assert expected_check in {v.rule for v in found}, f"not caught; reported: {[str(v) for v in found]}"


def test_every_case_names_a_rule_or_a_check_and_every_rule_has_cases():
    assert len(OURS) + len(CHECKOVS) == len(BREAKAGES)
    covered = {rule for rule, _, _ in OURS} | {"schema"}  # schema: test_overlays.py
    assert set(manifest_rules.RULES) <= covered


def test_dev_rules_differ_from_prod_only_where_meant(rendered):
    """Development mode and a TLS-less host are fine in dev, refused in production."""
    resources = copy.deepcopy(rendered["dev"])
    find(resources, "Ingress", "bobdesk")["spec"].pop("tls")
    assert manifest_rules.check(resources, production=False, schemas=False) == []
    assert {v.rule for v in manifest_rules.check(resources, production=True, schemas=False)} == {"ingress", "settings"}


def test_dev_mongodb_in_cluster_is_reachable_only_from_our_pods(rendered):
    resources = copy.deepcopy(rendered["dev"])
    set_in(policy(resources, "allow-mongodb"), "podSelector", {})
    assert "MongoDB" in {v.where for v in manifest_rules.check(resources, production=False, only=["network"])}
