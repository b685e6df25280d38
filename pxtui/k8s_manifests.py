"""Render the kustomize base in k8s/ into a list of Kubernetes objects, in apply order.

Why our own renderer: neither Debian (no `kustomize` package) nor PyPI (the `kustomize` project there
writes kustomizations, it does not render them) ships kustomize, and `pxtui deploy` must work
with nothing but this package installed. It implements exactly the fields the base uses —
`resources`, `namespace` and `images` — with kustomize's meaning, and refuses any other field, so a
kustomization it cannot render faithfully fails loudly instead of deploying something different.
`kubectl kustomize k8s/base` (kustomize v5) produces the same objects; k8s/README.md says how that
was checked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "resources", "namespace", "images"})
BASE_NAMESPACE = "pxtui"
IMAGE_NAME = "pxtui"  # the name the containers use; the kustomization's `images` maps it to a real ref

# Whether each kind this renderer may meet lives in a namespace. A kind missing here is refused: the
# namespace transformer must never guess.
NAMESPACED: dict[str, bool] = {
    "Namespace": False,
    "ClusterRole": False,
    "ClusterRoleBinding": False,
    "ServiceAccount": True,
    "Role": True,
    "RoleBinding": True,
    "Secret": True,
    "ConfigMap": True,
    "Service": True,
    "Deployment": True,
    "DaemonSet": True,
    "StatefulSet": True,
    "NetworkPolicy": True,
}


class ManifestError(ValueError):
    """The kustomization or one of its resources cannot be rendered; the message names the file."""


@dataclass(frozen=True)
class ImageRule:
    """One `images` entry: containers whose image is `name` (any tag) get newName/newTag/digest."""

    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None

    def apply(self, image: str) -> str | None:
        """The rewritten image, or None when this rule does not match it."""
        base, sep, ref = _split_image(image)
        if base != self.name:
            return None
        out = self.new_name or base
        if self.digest:
            return f"{out}@{self.digest}"
        if self.new_tag:
            return f"{out}:{self.new_tag}"
        return out + (sep + ref if sep else "")


def _split_image(image: str) -> tuple[str, str, str]:
    """(name, separator, tag-or-digest): `reg:5000/a/b:tag` -> (`reg:5000/a/b`, `:`, `tag`)."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@", digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], ":", image[colon + 1 :]
    return image, "", ""


def image_rule_for(ref: str, name: str = IMAGE_NAME) -> ImageRule:
    """The rule that makes containers named `name` use the full image reference `ref`."""
    base, sep, tail = _split_image(ref)
    if sep == "@":
        return ImageRule(name, new_name=base, digest=tail)
    return ImageRule(name, new_name=base, new_tag=tail or None)


def _load_kustomization(directory: Path) -> tuple[Path, dict[str, Any]]:
    for fname in KUSTOMIZATION_FILES:
        path = directory / fname
        if path.is_file():
            break
    else:
        raise ManifestError(f"{directory}: no kustomization.yaml there (is this the k8s/base directory?)")
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ManifestError(f"{path}: cannot read it: {e}") from e
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(doc) - SUPPORTED_FIELDS)
    if unknown:
        raise ManifestError(
            f"{path}: field(s) {', '.join(unknown)} are not supported by pxtui's renderer "
            f"(only {', '.join(sorted(SUPPORTED_FIELDS))}); render it with `kubectl kustomize` instead"
        )
    return path, doc


def _image_rules(path: Path, entries: list[Any]) -> list[ImageRule]:
    rules = []
    for e in entries:
        if not isinstance(e, dict) or "name" not in e:
            raise ManifestError(f"{path}: each `images` entry needs a name")
        extra = set(e) - {"name", "newName", "newTag", "digest"}
        if extra:
            raise ManifestError(f"{path}: unsupported `images` field(s) {', '.join(sorted(extra))}")
        rules.append(ImageRule(str(e["name"]), e.get("newName"), _opt_str(e.get("newTag")), e.get("digest")))
    return rules


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _read_resources(path: Path, file: Path) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(file.read_text()))
    except (OSError, yaml.YAMLError) as e:
        raise ManifestError(f"{file}: cannot read it (listed in {path}): {e}") from e
    out = []
    for d in docs:
        if d is None:
            continue
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            raise ManifestError(f"{file}: every document needs apiVersion and kind")
        if d["kind"] not in NAMESPACED:
            raise ManifestError(f"{file}: kind {d['kind']} is not one pxtui's renderer knows the scope of")
        out.append(d)
    return out


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs inside a workload object (none for other kinds)."""
    spec = obj.get("spec") or {}
    if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
        return [spec.get("template", {}).get("spec", {})]
    return []


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ps in pod_specs(obj):
        out += ps.get("initContainers", []) + ps.get("containers", [])
    return out


def _set_images(objs: list[dict[str, Any]], rules: list[ImageRule]) -> None:
    for obj in objs:
        for c in _containers(obj):
            for r in rules:
                new = r.apply(str(c.get("image", "")))
                if new is not None:
                    c["image"] = new
                    break


def _set_namespace(objs: list[dict[str, Any]], namespace: str) -> None:
    """kustomize's namespace transformer: namespaced objects move, a Namespace object is renamed,
    and ServiceAccount subjects of bindings follow the accounts they name."""
    moved_sas = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs if o["kind"] == "ServiceAccount"}
    for obj in objs:
        if NAMESPACED[obj["kind"]]:
            obj["metadata"]["namespace"] = namespace
        elif obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for s in obj.get("subjects", []):
                if s.get("kind") == "ServiceAccount" and (s.get("namespace"), s.get("name")) in moved_sas:
                    s["namespace"] = namespace


def render_dir(directory: Path) -> list[dict[str, Any]]:
    """The objects of one kustomization directory, with its transformers applied, in listed order."""
    path, doc = _load_kustomization(directory)
    objs: list[dict[str, Any]] = []
    for res in doc.get("resources") or []:
        target = (directory / str(res)).resolve()
        if target.is_dir():
            objs += render_dir(target)
        elif target.is_file():
            objs += _read_resources(path, target)
        else:
            raise ManifestError(f"{path}: resource {res!r} does not exist ({target})")
    if doc.get("namespace"):
        _set_namespace(objs, str(doc["namespace"]))
    _set_images(objs, _image_rules(path, doc.get("images") or []))
    return objs


def render(directory: Path, namespace: str | None = None, image: str | None = None) -> list[dict[str, Any]]:
    """The base, optionally moved to another namespace and/or pointed at another image.

    Moving it also renames the cluster-scoped RBAC objects (`pxtui-reader` -> `pxtui-reader-<ns>`)
    and the Namespace itself, so two installs in two namespaces never share or delete each other's
    ClusterRole or ClusterRoleBinding.
    """
    objs = copy.deepcopy(render_dir(directory))
    if image:
        _set_images(objs, [image_rule_for(image)])
    if namespace and namespace != BASE_NAMESPACE:
        _move(objs, namespace)
    return objs


def _move(objs: list[dict[str, Any]], namespace: str) -> None:
    renamed: dict[tuple[str, str], str] = {}
    for obj in objs:
        kind, meta = obj["kind"], obj["metadata"]
        if kind in ("ClusterRole", "ClusterRoleBinding"):
            renamed[(kind, meta["name"])] = f"{meta['name']}-{namespace}"
            meta["name"] = renamed[(kind, meta["name"])]
    _set_namespace(objs, namespace)
    for obj in objs:
        ref = obj.get("roleRef")
        if ref and (ref.get("kind"), ref.get("name")) in renamed:
            ref["name"] = renamed[(ref["kind"], ref["name"])]


def default_base_dir() -> Path:
    """k8s/base next to the package: present in a source checkout, an editable install and the image."""
    return Path(__file__).resolve().parent.parent / "k8s" / "base"


def to_yaml(objs: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream, for `kubectl apply -f -`."""
    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objs)
