"""Rendering the kustomize tree and reading what the pods would get, for the deploy tests.

`render` runs the kustomize that `make kustomize` installs (or one on PATH); the helpers below
walk the rendered documents the way the kubelet would: pod specs of every workload kind, the
environment of a container (ConfigMaps, `$(VAR)` references), the files a ConfigMap mounts.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import yaml

Doc: TypeAlias = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
OVERLAYS = sorted(path.parent.name for path in MANIFESTS.glob("overlays/*/kustomization.yaml"))
PROJECT_IMAGE = "fraud-detector"

# Kinds whose spec.template is a pod template (CronJob is one level deeper).
_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def kustomize_command() -> list[str]:
    """The pinned kustomize of `make kustomize`, else one on PATH, else `kubectl kustomize`."""
    pinned = os.environ.get("KUSTOMIZE") or str(REPO / ".cache" / "bin" / "kustomize")
    if Path(pinned).is_file():
        return [pinned, "build"]
    if found := shutil.which("kustomize"):
        return [found, "build"]
    if found := shutil.which("kubectl"):
        return [found, "kustomize"]
    raise FileNotFoundError(
        f"no kustomize at {pinned} nor on PATH: run `make kustomize` (it builds the pinned one)"
    )


def render(directory: Path) -> list[Doc]:
    """The documents `kubectl apply -k directory` would send, in kustomize's order."""
    result = subprocess.run(
        [*kustomize_command(), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kustomize build {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_with_components(overlay: str, components: list[str], workdir: Path) -> list[Doc]:
    """The overlay rendered as a user who adds `components` (paths under manifests/components)
    to its kustomization.yaml would get it: a copy of the overlay in `workdir`, its references
    to the rest of the tree made relative to there (kustomize accepts no absolute path)."""
    source = MANIFESTS / "overlays" / overlay
    target = workdir / overlay
    shutil.copytree(source, target)
    kustomization = yaml.safe_load((source / "kustomization.yaml").read_text())

    def moved(entry: str) -> str:
        if not (source / entry).is_dir():
            return entry  # a file of the overlay, copied along
        return os.path.relpath((source / entry).resolve(), target)

    for field in ("resources", "components"):
        kustomization[field] = [moved(entry) for entry in kustomization.get(field, [])]
    kustomization["components"] += [
        os.path.relpath(MANIFESTS / "components" / name, target) for name in components
    ]
    (target / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return render(target)


def name_of(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_specs(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod spec) for every document that makes pods."""
    for doc in docs:
        kind = doc["kind"]
        if kind == "Pod":
            yield doc, doc["spec"]
        elif kind in _TEMPLATE_KINDS:
            yield doc, doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(pod_spec: Doc) -> list[Doc]:
    """All containers of a pod spec, init and ephemeral ones included."""
    return [
        *pod_spec.get("initContainers", []),
        *pod_spec["containers"],
        *pod_spec.get("ephemeralContainers", []),
    ]


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    """The document of this kind whose name is `name` or `name` plus kustomize's hash suffix."""
    for doc in docs:
        if doc["kind"] == kind and re.fullmatch(
            rf"{re.escape(name)}(-[a-z0-9]{{10}})?", doc["metadata"]["name"]
        ):
            return doc
    raise AssertionError(f"no {kind} named {name} among {[name_of(doc) for doc in docs]}")


def workload(docs: list[Doc], kind: str, name: str) -> tuple[Doc, Doc, Doc]:
    """(workload, pod spec, first container) of a named workload."""
    doc = find(docs, kind, name)
    pod = next(spec for _, spec in pod_specs([doc]))
    return doc, pod, pod["containers"][0]


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, value)


def container_env(
    docs: list[Doc], container: Doc, field_values: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment the kubelet would give the container (optional Secrets left out).

    `field_values` supplies downward-API fields, e.g. {"metadata.name": "fraud-worker-0"}.
    """
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            ref = source["configMapRef"]
            found = [
                d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref["name"]
            ]
            if not found:
                assert ref.get("optional"), f"ConfigMap {ref['name']} is missing and not optional"
                continue
            env.update({source.get("prefix", "") + k: v for k, v in found[0]["data"].items()})
        elif "secretRef" in source:
            assert source["secretRef"].get("optional"), "Kafka credentials must stay optional"
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
        elif "fieldRef" in item.get("valueFrom", {}):
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            env[item["name"]] = (field_values or {}).get(path, f"<{path}>")
        else:
            raise AssertionError(f"unexpected env source {item} in {container['name']}")
    return env


def mounted_files(docs: list[Doc], pod_spec: Doc, container: Doc) -> dict[str, str]:
    """{path: content} of every file a ConfigMap volume puts into the container."""
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "configMap" not in volume:
            continue
        wanted = volume["configMap"]["name"]
        found = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == wanted]
        assert found, f"volume {volume['name']} mounts the missing ConfigMap {wanted}"
        config = found[0]
        for key, content in config["data"].items():
            files[f"{mount['mountPath'].rstrip('/')}/{key}"] = content
    return files


def secret_files(docs: list[Doc], pod_spec: Doc, container: Doc) -> dict[str, str | None]:
    """{path: content} of every file a Secret volume puts into the container through its
    `items`; the content is None when the Secret is not rendered (one created out of band)."""
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    files: dict[str, str | None] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "secret" not in volume:
            continue
        wanted = volume["secret"]["secretName"]
        found = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == wanted]
        data: dict[str, str] = {}
        if found:
            data = {k: base64.b64decode(v).decode() for k, v in found[0].get("data", {}).items()}
            data.update(found[0].get("stringData", {}))
        for item in volume["secret"].get("items", []):
            path = f"{mount['mountPath'].rstrip('/')}/{item['path']}"
            files[path] = data[item["key"]] if found else None
    return files


def with_local_secret_files(
    env: Mapping[str, str], files: Mapping[str, str | None], root: Path, stand_in: str
) -> dict[str, str]:
    """``env`` with every variable naming a mounted Secret file pointed at a copy under
    ``root``; ``stand_in`` is the content of a Secret created out of band."""
    local = dict(env)
    for name, value in env.items():
        if value in files:
            copy = root / f"secret-{name}"
            content = files[value]
            copy.write_text(stand_in if content is None else content)
            local[name] = str(copy)
    return local


def image_name(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def uses_project_image(container: Doc) -> bool:
    return bool(image_name(container["image"]).rsplit("/", 1)[-1] == PROJECT_IMAGE)


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects `labels`."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "Exists":
            matched = key in labels
        elif operator == "DoesNotExist":
            matched = key not in labels
        elif operator in ("In", "NotIn"):
            matched = (labels.get(key) in expression["values"]) == (operator == "In")
        else:
            raise AssertionError(f"unknown selector operator {operator}")
        if not matched:
            return False
    return True
