"""The kustomize tree: every overlay renders, validates strictly against the Kubernetes schemas,
runs only restricted pods, and wires the workers the way Faust's table routing needs."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.deploy import restricted
from tests.deploy.rendering import (
    OVERLAYS,
    REPO,
    Doc,
    container_env,
    find,
    image_name,
    name_of,
    pod_specs,
    secret_files,
    uses_project_image,
    with_local_secret_files,
    workload,
)

# The newest Kubernetes whose schemas kubernetes-validate bundles (no network needed).
KUBERNETES_VERSION = latest_version()

# What every overlay deploys; the dev and prod extras are checked below.
BASE_OBJECTS = [
    ("StatefulSet", "fraud-worker"),
    ("Service", "fraud-worker"),
    ("PodDisruptionBudget", "fraud-worker"),
    ("Job", "fraud-topics"),
    ("Deployment", "fraud-viewer"),
    ("ConfigMap", "fraud-config"),
    ("NetworkPolicy", "fraud-default-deny"),
]

# What stands in for a Secret the prod overlay expects to exist already (fraud-web-token).
OUT_OF_BAND_TOKEN = "0123456789abcdef0123456789abcdef"


def _names(docs: list[Doc]) -> set[str]:
    return {name_of(doc) for doc in docs}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_pipeline(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    for kind, name in BASE_OBJECTS:
        find(docs, kind, name)
    namespaces = {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces, f"one namespace, got {namespaces}"
    (namespace,) = [doc for doc in docs if doc["kind"] == "Namespace"]
    assert {namespace["metadata"]["name"]} == namespaces
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_dev_brings_its_own_kafka_and_load(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["dev"]
    kafka, _, _ = workload(docs, "StatefulSet", "kafka")
    assert kafka["spec"]["replicas"] == 1
    service = find(docs, "Service", "kafka")
    assert service["spec"]["clusterIP"] == "None"
    find(docs, "Deployment", "fraud-generator")
    config = find(docs, "ConfigMap", "fraud-config")
    assert config["data"]["KAFKA_BOOTSTRAP"] == f"{service['metadata']['name']}:9092"


def test_prod_uses_an_existing_kafka_and_keeps_its_secret(
    rendered: dict[str, list[Doc]],
) -> None:
    names = _names(rendered["prod"])
    assert "StatefulSet/kafka" not in names
    assert "Deployment/fraud-generator" not in names, "no synthetic load in production"
    # The real Secret is created out of band; an applied placeholder would overwrite it.
    assert not [name for name in names if name.startswith("Secret/")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_validates_strictly(rendered: dict[str, list[Doc]], overlay: str) -> None:
    errors = []
    for doc in rendered[overlay]:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            errors.append(f"{name_of(doc)}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{name_of(doc)}: {error.message}")
    assert not errors, f"invalid against Kubernetes {KUBERNETES_VERSION}:\n" + "\n".join(errors)


def test_strict_validation_rejects_an_unknown_field(rendered: dict[str, list[Doc]]) -> None:
    doc, _, container = workload(copy.deepcopy(rendered["dev"]), "StatefulSet", "fraud-worker")
    container["imagePulPolicy"] = "Always"  # a typo the API server would drop silently
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePulPolicy"):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_restricted(rendered: dict[str, list[Doc]], overlay: str) -> None:
    found = list(pod_specs(rendered[overlay]))
    assert len(found) >= 3, f"expected the worker, viewer and topic pods, got {len(found)}"
    problems = [
        f"{name_of(doc)}: {problem}"
        for doc, spec in found
        for problem in restricted.violations(spec)
    ]
    assert not problems, "\n".join(problems)


def _drop_container(context: dict[str, Any], field: str) -> None:
    context["containers"][0]["securityContext"].pop(field)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda pod: pod["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
        (lambda pod: pod["securityContext"].update(runAsUser=0), "runAsUser is 0"),
        (lambda pod: _drop_container(pod, "allowPrivilegeEscalation"), "allowPrivilegeEscalation"),
        (lambda pod: _drop_container(pod, "capabilities"), "drop ALL"),
        (lambda pod: pod["securityContext"].pop("seccompProfile"), "seccompProfile"),
        (lambda pod: _drop_container(pod, "readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
        (lambda pod: pod.update(hostNetwork=True), "hostNetwork"),
        (lambda pod: pod["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    ],
    ids=["non-root", "uid-0", "escalation", "capabilities", "seccomp", "rootfs", "host", "volume"],
)
def test_restricted_check_catches_a_missing_field(
    rendered: dict[str, list[Doc]], breakage: Any, expected: str
) -> None:
    _, pod, _ = workload(copy.deepcopy(rendered["dev"]), "StatefulSet", "fraud-worker")
    assert restricted.violations(pod) == []
    breakage(pod)
    assert any(expected in problem for problem in restricted.violations(pod))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_has_stable_names_state_and_probes(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    worker, pod, container = workload(docs, "StatefulSet", "fraud-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    selector = worker["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()

    # The headless Service that gives each pod its DNS name <pod>.<service>.
    service = find(docs, "Service", worker["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= labels.items()

    env = container_env(docs, container, {"metadata.name": "fraud-worker-0"})
    assert env["WEB_HOST"] == f"fraud-worker-0.{service['metadata']['name']}"
    assert env["WEB_BIND"] == "0.0.0.0"
    (web,) = [port for port in container["ports"] if port["name"] == "web"]
    assert int(env["WEB_PORT"]) == web["containerPort"]
    assert [port["port"] for port in service["spec"]["ports"]] == [web["containerPort"]]

    # DATA_DIR is the pod's own persistent volume; /tmp is the only other writable place.
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    claims = {claim["metadata"]["name"] for claim in worker["spec"]["volumeClaimTemplates"]}
    assert mounts[env["DATA_DIR"]] in claims
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]

    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "web"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "web"}

    budget = find(docs, "PodDisruptionBudget", "fraud-worker")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_valid_for_the_app(
    rendered: dict[str, list[Doc]], overlay: str, tmp_path: Path
) -> None:
    from app.errors import SettingsError
    from app.settings import SETTINGS_HELP, Settings

    docs = rendered[overlay]
    config = find(docs, "ConfigMap", "fraud-config")
    unknown = set(config["data"]) - set(SETTINGS_HELP)
    assert not unknown, f"fraud-config has settings the app does not know: {sorted(unknown)}"
    _, pod, container = workload(docs, "StatefulSet", "fraud-worker")
    env = container_env(docs, container, {"metadata.name": "fraud-worker-0"})
    assert set(env) - set(SETTINGS_HELP) == {"POD_NAME"}
    files = secret_files(docs, pod, container)
    env = with_local_secret_files(env, files, tmp_path, stand_in=OUT_OF_BAND_TOKEN)
    try:
        settings = Settings.from_env(env)
    except SettingsError as error:
        pytest.fail(f"the {overlay} worker would not start: {error}")
    replicas = find(docs, "StatefulSet", "fraud-worker")["spec"]["replicas"]
    assert replicas <= settings.partitions, "workers beyond the partition count stay idle"
    # A stop with Kafka unreachable ends after STOP_TIMEOUT (the nemesis's SIGTERM while cut off
    # and tests/integration/test_faults.py): it must end before the kubelet's SIGKILL.
    assert settings.stop_timeout_s + 5 <= pod["terminationGracePeriodSeconds"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "only In is used here"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_only_what_the_pipeline_needs(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    policies = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
    pods = {doc["metadata"]["name"]: doc for doc, _ in pod_specs(docs)}

    def labels(name: str) -> dict[str, str]:
        template = pods[name]["spec"]["template"]
        return dict(template["metadata"]["labels"])

    def applying(name: str, direction: str) -> list[Doc]:
        return [
            policy
            for policy in policies
            if direction in policy["spec"]["policyTypes"]
            and _selects(policy["spec"]["podSelector"], labels(name))
        ]

    def egress_ports(name: str) -> set[int]:
        rules = [
            rule for policy in applying(name, "Egress") for rule in policy["spec"].get("egress", [])
        ]
        return {port["port"] for rule in rules for port in rule.get("ports", [])}

    for name in pods:
        # Every pod is isolated both ways; what it may do is listed below.
        assert applying(name, "Ingress") and applying(name, "Egress"), f"{name} is not isolated"
        ingress_rules = [r for p in applying(name, "Ingress") for r in p["spec"].get("ingress", [])]
        if name in ("fraud-generator", "fraud-viewer", "fraud-topics"):
            assert not ingress_rules, f"{name} needs no incoming traffic"
            assert egress_ports(name) == {53, 9092}, f"{name}: DNS and Kafka only"
    assert egress_ports("fraud-worker") == {53, 9092, 6066}
    (peers,) = [p for p in applying("fraud-worker", "Ingress") if p["spec"].get("ingress")]
    (rule,) = peers["spec"]["ingress"]
    assert [port["port"] for port in rule["ports"]] == [6066]
    assert all(_selects(source["podSelector"], labels("fraud-worker")) for source in rule["from"])
    if "kafka" in pods:
        clients = find(docs, "NetworkPolicy", "fraud-kafka-clients")
        (target,) = clients["spec"]["egress"][0]["to"]
        assert _selects(target["podSelector"], labels("kafka")), "clients may reach the broker"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_and_consistent(rendered: dict[str, list[Doc]], overlay: str) -> None:
    images = {
        container["image"]
        for _, spec in pod_specs(rendered[overlay])
        for container in spec["containers"]
    }
    project = {image for image in images if uses_project_image({"image": image})}
    assert len(project) == 1, f"one project image per overlay, got {project}"
    for image in images:
        assert image != image_name(image), f"{image} has no tag"
        assert not image.endswith(":latest"), f"{image} is not pinned"
    # The broker image is the Kafka version the integration tests run against.
    pom = (REPO / "scripts" / "kafka-jars" / "pom.xml").read_text()
    version = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert version, "scripts/kafka-jars/pom.xml names no kafka.version"
    kafka = {image for image in images if image_name(image) == "apache/kafka"}
    # only the dev overlay runs a broker (the topics Job runs the project's image)
    assert kafka == ({f"apache/kafka:{version.group(1)}"} if overlay == "dev" else set())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_worker_api_token_comes_from_a_secret(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    _, pod, container = workload(docs, "StatefulSet", "fraud-worker")
    env = container_env(docs, container, {"metadata.name": "fraud-worker-0"})
    assert "WEB_TOKEN" not in env, "the token itself belongs in a Secret, not in the pod spec"
    files = secret_files(docs, pod, container)
    assert env.get("WEB_TOKEN_FILE") in files, f"WEB_TOKEN_FILE is no mounted Secret: {env}"
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert not volume["secret"].get("optional"), "a worker must not start without its token"
    token = files[env["WEB_TOKEN_FILE"]]
    if overlay == "prod":
        assert token is None, "prod's token is created out of band, never in this tree"
    else:
        assert token, f"the {overlay} overlay renders an empty token"
