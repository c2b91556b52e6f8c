"""The monitoring components (manifests/components/monitoring): each overlay with one of them
added renders and validates; a Prometheus pod of a labelled namespace may reach the workers' web
port and nothing else; the ServiceMonitor or the annotations point at the workers' /metrics."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.deploy import service_monitor
from tests.deploy.rendering import (
    OVERLAYS,
    REPO,
    Doc,
    find,
    name_of,
    pod_specs,
    render_with_components,
    selects,
    workload,
)

COMPONENTS = ["monitoring/service-monitor", "monitoring/scrape-annotations"]
CASES = [(overlay, component) for overlay in OVERLAYS for component in COMPONENTS]
CASE_IDS = [f"{overlay}+{component.rsplit('/', 1)[1]}" for overlay, component in CASES]
# Who may scrape, as docs/kubernetes.md tells the administrator.
MONITORING_NAMESPACE_LABEL = {"fraud-detector.io/monitoring": "true"}
PROMETHEUS_POD_LABEL = {"app.kubernetes.io/name": "prometheus"}
ADDED_POLICY = "NetworkPolicy/fraud-worker-monitoring"


@pytest.fixture(scope="session")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[Doc]]:
    """{(overlay, component): the overlay rendered with the component added}."""
    return {
        (overlay, component): render_with_components(
            overlay, [component], tmp_path_factory.mktemp(overlay)
        )
        for overlay, component in CASES
    }


def _web_port(docs: list[Doc]) -> int:
    _, _, container = workload(docs, "StatefulSet", "fraud-worker")
    (web,) = [port for port in container["ports"] if port["name"] == "web"]
    return int(web["containerPort"])


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_every_document_validates_strictly(
    monitored: dict[tuple[str, str], list[Doc]], overlay: str, component: str
) -> None:
    errors = []
    for doc in monitored[overlay, component]:
        try:
            if doc["kind"] == "ServiceMonitor":
                service_monitor.validate(doc)
            else:
                kubernetes_validate.validate(doc, latest_version(), strict=True)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            path = ".".join(str(part) for part in error.path)
            errors.append(f"{name_of(doc)}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{name_of(doc)}: {error.message}")
    assert not errors, "\n".join(errors)


def test_the_service_monitor_schema_rejects_an_unknown_field(
    monitored: dict[tuple[str, str], list[Doc]],
) -> None:
    doc = copy.deepcopy(find(monitored["prod", COMPONENTS[0]], "ServiceMonitor", "fraud-worker"))
    service_monitor.validate(doc)
    doc["spec"]["endpoints"][0]["intervall"] = "30s"  # a typo the operator would never read
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        service_monitor.validate(doc)


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_the_component_adds_only_the_scrape_pieces(
    rendered: dict[str, list[Doc]],
    monitored: dict[tuple[str, str], list[Doc]],
    overlay: str,
    component: str,
) -> None:
    before = {name_of(doc): doc for doc in rendered[overlay]}
    after = {name_of(doc): doc for doc in monitored[overlay, component]}
    added = set(after) - set(before)
    assert not set(before) - set(after), "the component removes nothing"
    if component.endswith("service-monitor"):
        assert added == {ADDED_POLICY, "ServiceMonitor/fraud-worker"}
    else:
        assert added == {ADDED_POLICY}
    changed = sorted(name for name in before if before[name] != after[name])
    if component.endswith("scrape-annotations"):
        assert changed == ["StatefulSet/fraud-worker"]
        worker = copy.deepcopy(after["StatefulSet/fraud-worker"])
        worker["spec"]["template"]["metadata"].pop("annotations")
        assert worker == before["StatefulSet/fraud-worker"], "only the pod annotations change"
    else:
        assert changed == []


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_prometheus_may_reach_the_web_port_of_the_workers_only(
    monitored: dict[tuple[str, str], list[Doc]], overlay: str, component: str
) -> None:
    docs = monitored[overlay, component]
    policy = find(docs, "NetworkPolicy", "fraud-worker-monitoring")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec, "no egress is opened"
    pods = {
        doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"]
        for doc, _ in pod_specs(docs)
    }
    assert [name for name, labels in pods.items() if selects(spec["podSelector"], labels)] == [
        "fraud-worker"
    ]
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": _web_port(docs)}]
    assert rule["from"], "an empty `from` would admit every source"
    for peer in rule["from"]:
        # Both selectors in one peer: a Prometheus pod AND in a labelled namespace.
        assert set(peer) == {"namespaceSelector", "podSelector"}, peer
        assert peer["namespaceSelector"] == {"matchLabels": MONITORING_NAMESPACE_LABEL}
        assert peer["podSelector"] == {"matchLabels": PROMETHEUS_POD_LABEL}
        assert not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": "default"})
        assert not selects(peer["podSelector"], pods["fraud-worker"])
    docs_text = (REPO / "docs" / "kubernetes.md").read_text()
    for key, value in {**MONITORING_NAMESPACE_LABEL, **PROMETHEUS_POD_LABEL}.items():
        assert f"{key}={value}" in docs_text, f"docs/kubernetes.md must name {key}={value}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_monitor_scrapes_every_worker_at_metrics(
    monitored: dict[tuple[str, str], list[Doc]], overlay: str
) -> None:
    docs = monitored[overlay, "monitoring/service-monitor"]
    monitor = find(docs, "ServiceMonitor", "fraud-worker")
    worker = find(docs, "StatefulSet", "fraud-worker")
    service = find(docs, "Service", worker["spec"]["serviceName"])
    namespace = worker["metadata"]["namespace"]
    assert monitor["metadata"]["namespace"] == namespace
    # Without a namespaceSelector the operator looks in the ServiceMonitor's own namespace.
    assert "namespaceSelector" not in monitor["spec"]
    matching = [
        doc["metadata"]["name"]
        for doc in docs
        if doc["kind"] == "Service"
        and selects(monitor["spec"]["selector"], doc["metadata"]["labels"])
    ]
    assert matching == [service["metadata"]["name"]]
    assert (
        service["spec"]["selector"].items()
        <= worker["spec"]["template"]["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]]
    assert port["targetPort"] == "web" and port["port"] == _web_port(docs)
    assert endpoint["path"] == "/metrics" and endpoint.get("scheme", "http") == "http"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_scrape_annotations_name_the_metrics_port_and_path(
    monitored: dict[tuple[str, str], list[Doc]], overlay: str
) -> None:
    docs = monitored[overlay, "monitoring/scrape-annotations"]
    worker = find(docs, "StatefulSet", "fraud-worker")
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(_web_port(docs)),
        "prometheus.io/path": "/metrics",
    }
    others = [doc for doc, _ in pod_specs(docs) if doc is not worker]
    assert not [
        name_of(doc) for doc in others if doc["spec"]["template"]["metadata"].get("annotations")
    ]


def test_the_two_ways_exclude_each_other(tmp_path: Path) -> None:
    # Both at once would scrape every worker twice; kustomize refuses the shared policy twice.
    with pytest.raises(AssertionError, match="fraud-worker-monitoring"):
        render_with_components("prod", COMPONENTS, tmp_path)
