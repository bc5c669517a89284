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

`model` holds the constants the rules hold the manifests to, `render`, `Manifests`, `@rule` and
`check`; `pods` the rules on workloads and their pods (schemas, labels, commands, image,
security, resources, probes, termination, scraping, secrets, settings); `exposure` those on
Services, the Ingress, autoscalers and disruption budgets; `network` the NetworkPolicies (who
may reach whom, MongoDB, the provider); `checkov_runner` checkov; `cli` the command line.

    .venv/bin/python deploy/manifest_rules [dev|prod ...]   # render, validate, report
"""

# Importing the rule modules registers their rules, in this order (the order of the report).
from . import pods, exposure, network  # noqa: I001 (registration order)
from . import checkov_runner, cli, model
from .checkov_runner import CHECKOV_CONFIG, checkov, checkov_binary
from .cli import main
from .model import (
    CALLERS, COMMANDS, CREDENTIALS_IN_URL, DEPLOY_DIR, ENTRYPOINT, GUNICORN_COMMANDS,
    HTTP_COMPONENTS, INGRESS_ANNOTATION_FORBIDDEN, INTERNAL_PATHS, KUBERNETES_VERSIONS,
    MAINTENANCE_JOBS, MIN_GRACE_SECONDS, MIN_REPLICAS, MONGO_PORT, NAME_LABEL, OVERLAYS, PART_OF,
    POD_KINDS, POLLER, POLLER_PORT, PORT_VARIABLES, PROVIDER_CALLERS, PUBLIC_ROUTES, RULES,
    SAMPLE_PUBLIC_IP, SECRET_ENV, SECRET_LOOKING_NAME, SETTINGS_KEYS, SKIP_SCHEMA_KINDS, check,
    containers, Manifests, name_of, pod_metadata, pod_spec, port_numbers, render, RenderError, Rule,
    rule, selects, Violation,
)
from .pods import entrypoint_commands

__all__ = [
    "CALLERS",
    "CHECKOV_CONFIG",
    "COMMANDS",
    "CREDENTIALS_IN_URL",
    "DEPLOY_DIR",
    "ENTRYPOINT",
    "GUNICORN_COMMANDS",
    "HTTP_COMPONENTS",
    "INGRESS_ANNOTATION_FORBIDDEN",
    "INTERNAL_PATHS",
    "KUBERNETES_VERSIONS",
    "MAINTENANCE_JOBS",
    "MIN_GRACE_SECONDS",
    "MIN_REPLICAS",
    "MONGO_PORT",
    "NAME_LABEL",
    "OVERLAYS",
    "PART_OF",
    "POD_KINDS",
    "POLLER",
    "POLLER_PORT",
    "PORT_VARIABLES",
    "PROVIDER_CALLERS",
    "PUBLIC_ROUTES",
    "RULES",
    "SAMPLE_PUBLIC_IP",
    "SECRET_ENV",
    "SECRET_LOOKING_NAME",
    "SETTINGS_KEYS",
    "SKIP_SCHEMA_KINDS",
    "Manifests",
    "RenderError",
    "Rule",
    "Violation",
    "check",
    "checkov",
    "checkov_binary",
    "checkov_runner",
    "cli",
    "containers",
    "entrypoint_commands",
    "exposure",
    "main",
    "model",
    "name_of",
    "network",
    "pod_metadata",
    "pod_spec",
    "pods",
    "port_numbers",
    "render",
    "rule",
    "selects",
]
