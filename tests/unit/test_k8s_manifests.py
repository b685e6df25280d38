"""k8s/base: rendered by pxtui's kustomize renderer, validated against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), and held to the security properties the
deployment promises: hostPID, no privileged containers, only the capabilities eBPF needs, read-only
RBAC, read-only host mounts, the signing key mounted from a Secret, limits everywhere."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from pxtui.k8s_manifests import ManifestError, default_base_dir, render, render_dir

# The oldest Kubernetes release still maintained upstream when this was written, and the newest
# whose schemas kubernetes-validate ships.
VERSIONS = ("1.32.0", kubernetes_validate.utils.latest_version())
PEM_CAPS = {"BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE", "SYS_RESOURCE", "DAC_READ_SEARCH"}
HOST_PATHS = {"/lib/modules", "/usr/src", "/sys/kernel/tracing"}
READ_VERBS = {"get", "list", "watch"}


@pytest.fixture(scope="module")
def objs() -> list[dict[str, Any]]:
    return render(default_base_dir())


def by_kind(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (obj,) = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return obj


def workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in ("Deployment", "DaemonSet")]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def expand(arg: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of container args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def test_renders_every_object_in_apply_order(objs: list[dict[str, Any]]) -> None:
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("Namespace", "pxtui"),
        ("ServiceAccount", "pxtui"),
        ("ClusterRole", "pxtui-reader"),
        ("ClusterRoleBinding", "pxtui-reader"),
        ("Secret", "pxtui-signing-key"),
        ("Service", "pxtui-vizier"),
        ("Deployment", "pxtui-vizier"),
        ("Deployment", "pxtui-kelvin"),
        ("DaemonSet", "pxtui-pem"),
    ]
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for o in objs:
        assert o["metadata"].get("namespace") == (None if o["kind"] in cluster_scoped else "pxtui"), o["kind"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(objs: list[dict[str, Any]], version: str) -> None:
    for o in objs:
        kubernetes_validate.validate(o, version, strict=True)


def test_the_validator_rejects_a_broken_object(objs: list[dict[str, Any]]) -> None:
    """The validation above can fail: a misspelt field and a wrong type are both caught."""
    ds = copy.deepcopy(by_kind(objs, "DaemonSet"))
    pod_spec(ds)["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, VERSIONS[-1], strict=True)
    ds = copy.deepcopy(by_kind(objs, "DaemonSet"))
    pod_spec(ds)["containers"][0]["ports"][0]["containerPort"] = "51401"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, VERSIONS[-1], strict=True)


def test_pem_sees_every_process_with_only_the_capabilities_ebpf_needs(objs: list[dict[str, Any]]) -> None:
    spec = pod_spec(by_kind(objs, "DaemonSet"))
    assert spec["hostPID"] is True
    assert spec.get("hostNetwork", False) is False and spec.get("hostIPC", False) is False
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == PEM_CAPS
    assert "NET_ADMIN" not in sc["capabilities"]["add"]
    # the API refuses allowPrivilegeEscalation=false with CAP_SYS_ADMIN; false would be no boundary anyway
    assert sc.get("allowPrivilegeEscalation") is not False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_no_container_anywhere_is_privileged(objs: list[dict[str, Any]]) -> None:
    for o in objs:
        if o["kind"] in ("Deployment", "DaemonSet"):
            for c in pod_spec(o)["containers"] + pod_spec(o).get("initContainers", []):
                assert c.get("securityContext", {}).get("privileged") is not True, o["metadata"]["name"]


def test_host_paths_are_the_needed_ones_and_read_only(objs: list[dict[str, Any]]) -> None:
    spec = pod_spec(by_kind(objs, "DaemonSet"))
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert set(host.values()) == HOST_PATHS
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    for name, path in host.items():
        assert mounts[name]["readOnly"] is True, path
        assert mounts[name]["mountPath"] == path  # BCC looks for them where the host has them
    assert not any("hostPath" in v for v in pod_spec(by_kind(objs, "Deployment", "pxtui-vizier"))["volumes"])


def test_rbac_is_read_only(objs: list[dict[str, Any]]) -> None:
    role = by_kind(objs, "ClusterRole")
    granted: dict[str, set[str]] = {}
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= READ_VERBS, rule
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        for group in rule["apiGroups"]:
            granted.setdefault(group, set()).update(rule["resources"])
    assert granted == {
        "": {"pods", "services", "endpoints", "namespaces", "nodes"},
        "apps": {"replicasets", "deployments"},
    }
    binding = by_kind(objs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "pxtui-reader",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pxtui", "namespace": "pxtui"}]
    for w in workloads(objs):
        assert pod_spec(w)["serviceAccountName"] == "pxtui"


def test_signing_key_secret_is_mounted_where_the_env_points(objs: list[dict[str, Any]]) -> None:
    secret = by_kind(objs, "Secret")
    assert "data" not in secret and "stringData" not in secret  # no key in the repository
    for w in workloads(objs):
        spec = pod_spec(w)
        (c,) = spec["containers"]
        key_file = Path(env_of(c)["PXTUI_SIGNING_KEY_FILE"])
        (vol,) = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]]
        assert vol["secret"]["items"] == [{"key": "signing.key", "path": key_file.name}]
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == vol["name"]]
        assert Path(mount["mountPath"]) == key_file.parent and mount["readOnly"] is True
        assert vol["secret"]["defaultMode"] & 0o007 == 0  # not world-readable


def test_container_commands_and_downward_api(objs: list[dict[str, Any]]) -> None:
    (vizier,) = pod_spec(by_kind(objs, "Deployment", "pxtui-vizier"))["containers"]
    assert vizier["command"] + vizier["args"] == ["pxtui", "vizier", "--listen", "0.0.0.0:51400", "--kubernetes"]
    (pem,) = pod_spec(by_kind(objs, "DaemonSet"))["containers"]
    env = env_of(pem)
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    kubelet_env = {"POD_IP": "10.1.2.3", "POD_NAMESPACE": "pxtui"}
    argv = [expand(a, kubelet_env) for a in pem["command"] + pem["args"]]
    assert argv == [
        "pxtui", "agent", "--broker", "pxtui-vizier.pxtui.svc:51400", "--listen", "0.0.0.0:51401",
        "--advertise", "10.1.2.3:51401", "--kubernetes",
    ]  # fmt: skip
    # and the processes accept them: the roles' own argument parsers
    from cluster.pem.agent_main import build_parser as agent_parser
    from cluster.vizier.server import build_parser as vizier_parser

    a = agent_parser().parse_args(argv[2:])
    assert a.kubernetes and a.advertise == "10.1.2.3:51401" and a.broker == "pxtui-vizier.pxtui.svc:51400"
    v = vizier_parser().parse_args(vizier["args"][1:])
    assert v.kubernetes and v.addr == "0.0.0.0:51400" and not v.embedded_pem
    (kelvin,) = pod_spec(by_kind(objs, "Deployment", "pxtui-kelvin"))["containers"]
    kenv = env_of(kelvin)
    assert kenv["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    from cluster.vizier.kelvin import build_parser as kelvin_parser

    k = kelvin_parser().parse_args([expand(x, kubelet_env) for x in kelvin["args"]][1:])
    assert k.kubernetes and k.broker == "pxtui-vizier.pxtui.svc:51400" and k.advertise == "10.1.2.3:51402"


def test_state_dir_is_a_subdirectory_of_an_empty_dir(objs: list[dict[str, Any]]) -> None:
    """pxtui chmods its state dir to 0700; the non-root Vizier can only do that to a directory it made."""
    for w in workloads(objs):
        kind, spec = w["metadata"]["name"], pod_spec(w)
        (c,) = spec["containers"]
        state = Path(env_of(c)["PXTUI_STATE_DIR"])
        empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        (mount,) = [m for m in c["volumeMounts"] if m["name"] in empty and state.is_relative_to(m["mountPath"])]
        assert state != Path(mount["mountPath"]), kind


def test_limits_probes_and_the_service_wiring(objs: list[dict[str, Any]]) -> None:
    for w in workloads(objs):
        kind = w["metadata"]["name"]
        for c in pod_spec(w)["containers"]:
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), kind
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), kind
            assert c["readinessProbe"] and c["livenessProbe"]
            assert c["image"] == "pxtui:0.1.0"
    dep = by_kind(objs, "Deployment", "pxtui-vizier")
    svc = by_kind(objs, "Service")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    ports = {p["name"]: p["containerPort"] for p in pod_spec(dep)["containers"][0]["ports"]}
    assert svc["spec"]["ports"] == [{"name": "grpc", "port": 51400, "targetPort": "grpc", "protocol": "TCP"}]
    assert ports["grpc"] == 51400
    vsc = pod_spec(dep)["securityContext"]
    assert vsc["runAsNonRoot"] is True and pod_spec(dep)["containers"][0]["securityContext"]["capabilities"] == {
        "drop": ["ALL"]
    }


def test_namespace_allows_the_pem_under_pod_security_admission(objs: list[dict[str, Any]]) -> None:
    assert by_kind(objs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_another_namespace_and_image(objs: list[dict[str, Any]]) -> None:
    moved = render(default_base_dir(), namespace="obs", image="registry.example:5000/team/pxtui@sha256:" + "a" * 64)
    assert by_kind(moved, "Namespace")["metadata"]["name"] == "obs"
    assert by_kind(moved, "ClusterRole")["metadata"]["name"] == "pxtui-reader-obs"
    crb = by_kind(moved, "ClusterRoleBinding")
    assert crb["metadata"]["name"] == "pxtui-reader-obs" and crb["roleRef"]["name"] == "pxtui-reader-obs"
    assert crb["subjects"][0]["namespace"] == "obs"
    for o in moved:
        if o["kind"] in ("Deployment", "DaemonSet"):
            assert o["metadata"]["namespace"] == "obs"
            assert pod_spec(o)["containers"][0]["image"] == "registry.example:5000/team/pxtui@sha256:" + "a" * 64
    (pem,) = pod_spec(by_kind(moved, "DaemonSet"))["containers"]
    assert expand(pem["args"][2], {"POD_NAMESPACE": "obs"}) == "pxtui-vizier.obs.svc:51400"
    assert render(default_base_dir()) == objs  # rendering again gives the same objects (no shared state)


def test_renderer_refuses_what_it_cannot_render_faithfully(tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(default_base_dir(), base)
    kust = base / "kustomization.yaml"
    kust.write_text(kust.read_text() + "commonLabels:\n  team: x\n")
    with pytest.raises(ManifestError, match=r"commonLabels are not supported by pxtui's renderer"):
        render_dir(base)
    (base / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    with pytest.raises(ManifestError, match=r"resource 'missing.yaml' does not exist"):
        render_dir(base)
    with pytest.raises(ManifestError, match=r"no kustomization.yaml there"):
        render_dir(tmp_path)


def test_dockerfile_builds_from_bookworm_with_bcc() -> None:
    text = (default_base_dir().parent.parent / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:bookworm", text, re.M)
    assert "python3-bpfcc" in text
    for src in re.findall(r"^COPY (?:--\S+ )*(\S+) ", text, re.M):
        assert (default_base_dir().parent.parent / src).exists(), src
