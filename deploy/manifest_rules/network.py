"""The network rule: NetworkPolicies evaluated for every pair of our pods and stranger pods."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator, Mapping

from .model import (
    CALLERS,
    MONGO_PORT,
    NAME_LABEL,
    POLLER,
    PROVIDER_CALLERS,
    SAMPLE_PUBLIC_IP,
    Manifests,
    Violation,
    name_of,
    pod_metadata,
    pod_spec,
    port_numbers,
    rule,
    selects,
)


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
    yield from policy_shape_violations(policies)
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
    yield from component_reachability_violations(policies, pods, strangers)
    yield from egress_reachability_violations(policies, pods, strangers, mongo_destinations(m, namespace))


def policy_shape_violations(policies: list[dict]) -> Iterator[Violation]:
    """A default-deny policy; no ingress open to any namespace or address; egress names its ports and the database."""
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


def component_reachability_violations(policies: list[dict], pods: list[Pod],
                                      strangers: list[Pod]) -> Iterator[Violation]:
    """Each component's ports: open to its callers, closed to every other pod of ours and to strangers."""
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


def egress_reachability_violations(policies: list[dict], pods: list[Pod], strangers: list[Pod],
                                   databases: list[Pod | Address]) -> Iterator[Violation]:
    """MongoDB from every pod of ours and no stranger; the provider's API from the worker pods only."""
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
