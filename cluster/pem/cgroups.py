"""Which container and which pod a process runs in, from /proc/<pid>/cgroup.

Why parse paths: on a node the PEM sees every process through hostPID, and the only per-process
fact that names its container is the cgroup path the runtime created for it. Runtimes and kubelet
drivers spell that path differently, and hosts mount cgroups three ways:

* v2 (unified): one line ``0::<path>``;
* v1: one line per hierarchy ``<id>:<controllers>:<path>`` (``name=systemd`` among them);
* hybrid: both; the v2 line may hold the same path as v1 or only ``/``.

Path shapes recognised (``<id>`` is the 64-hex container id, ``<uid>`` the pod UID, which the
systemd cgroup driver writes with ``_`` instead of ``-``):

* ``/system.slice/docker-<id>.scope`` (docker, systemd driver)
* ``/docker/<id>`` (docker, cgroupfs driver)
* ``.../kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope`` (containerd, systemd driver)
* ``.../kubepods-<qos>-pod<uid>.slice/crio-<id>.scope`` (CRI-O, systemd driver)
* ``.../kubepods-<qos>-pod<uid>.slice/docker-<id>.scope`` (dockershim / cri-dockerd)
* ``/kubepods/<qos>/pod<uid>/<id>`` and ``/kubepods/pod<uid>/<id>`` (cgroupfs driver, any runtime)

``crio-conmon-<id>.scope`` is CRI-O's monitor process, outside the container, so it names the pod
but no container. Anything else (a systemd service, a cgroup namespace showing ``/``) names neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ID = r"([0-9a-f]{64})"
# Leaf components that name a container, with the runtime that creates them.
_LEAF_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^cri-containerd-{_ID}\.scope$"), "containerd"),
    (re.compile(rf"^crio-{_ID}\.scope$"), "cri-o"),
    (re.compile(rf"^docker-{_ID}\.scope$"), "docker"),
    (re.compile(rf"^libpod-{_ID}\.scope$"), "podman"),
)
_BARE_ID = re.compile(rf"^{_ID}$")
_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$")


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    """What one process's cgroup membership says about it."""

    #: the unified (v2) path, or the name=systemd / first v1 path when there is no v2 line
    path: str
    #: 64-hex container id, "" when the process is not in a container
    container_id: str = ""
    #: Kubernetes pod UID with dashes, "" when the process is not in a pod
    pod_uid: str = ""
    #: "docker", "containerd", "cri-o", "podman", or "" when unknown (cgroupfs paths do not say)
    runtime: str = ""


def _match_path(path: str) -> tuple[str, str, str]:
    """(container_id, pod_uid, runtime) found in one cgroup path; empty strings when absent."""
    parts = [p for p in path.split("/") if p]
    container_id = runtime = pod_uid = ""
    for i, part in enumerate(parts):
        m = _POD.search(part)
        if m:
            pod_uid = m.group(1).replace("_", "-")
            continue
        for pat, rt in _LEAF_PATTERNS:
            m = pat.match(part)
            if m:
                container_id, runtime = m.group(1), rt
                break
        else:
            m = _BARE_ID.match(part)
            if m and i > 0 and (parts[i - 1] == "docker" or _POD.search(parts[i - 1])):
                container_id = m.group(1)
                runtime = "docker" if parts[i - 1] == "docker" else ""
    return container_id, pod_uid, runtime


def parse_cgroup_file(text: str) -> CgroupInfo:
    """Parse the text of /proc/<pid>/cgroup (any layout) into a CgroupInfo.

    The container comes from the first line whose path names one, trying the v2 line first, then
    name=systemd, then the v1 controllers in file order: on hybrid hosts the v2 line is often just
    "/" while the v1 hierarchies carry the runtime's path.
    """
    unified: str | None = None
    systemd: str | None = None
    v1: list[str] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            unified = path
        elif "name=systemd" in controllers.split(","):
            systemd = path
        else:
            v1.append(path)
    display = unified if unified is not None else systemd if systemd is not None else (v1[0] if v1 else "")
    candidates = [p for p in (unified, systemd, *v1) if p]
    for path in candidates:
        container_id, pod_uid, runtime = _match_path(path)
        if container_id or pod_uid:
            return CgroupInfo(display, container_id, pod_uid, runtime)
    return CgroupInfo(display)


def read_cgroup(pid: int, proc: str = "/proc") -> CgroupInfo:
    """CgroupInfo of a live process; an empty one when it has exited or cannot be read."""
    try:
        with open(f"{proc}/{pid}/cgroup", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return CgroupInfo("")
    return parse_cgroup_file(text)
