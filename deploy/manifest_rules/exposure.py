"""Rules on how the Deployments are reached and kept up: Services, the Ingress, autoscalers and
disruption budgets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .model import (
    HTTP_COMPONENTS,
    INGRESS_ANNOTATION_FORBIDDEN,
    INTERNAL_PATHS,
    MIN_REPLICAS,
    POLLER,
    PUBLIC_ROUTES,
    Manifests,
    Violation,
    name_of,
    pod_metadata,
    pod_spec,
    port_numbers,
    rule,
    selects,
)


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

