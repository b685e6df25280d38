"""Container and pod attribution from /proc/<pid>/cgroup, for every layout and runtime path shape.

The fixtures are copies of what real hosts print (v1 with all controllers, v2 only, hybrid with a
"/" unified line), written into a fake /proc so the same code path that reads the live /proc runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.pem.cgroups import CgroupInfo, parse_cgroup_file, read_cgroup
from cluster.pem.process_info import ProcessCache

CID = "8f4b1f7a0d3e2c5b6a798812f3e4d5c6b7a8091a2b3c4d5e6f708192a3b4c5d6"
CID2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
POD = "5e5c1f8a-3b2d-4c6e-9f10-112233445566"
POD_ = POD.replace("-", "_")

V1_CONTROLLERS = (
    "pids", "memory", "cpu,cpuacct", "blkio", "devices", "freezer", "net_cls,net_prio", "cpuset",
    "perf_event", "hugetlb", "rdma", "misc",
)  # fmt: skip


def v1(path: str, systemd: str | None = None) -> str:
    """A cgroup v1 host: every controller in its own hierarchy, name=systemd first (id 1)."""
    lines = [f"1:name=systemd:{systemd or path}"]
    lines += [f"{i}:{c}:{path}" for i, c in enumerate(V1_CONTROLLERS, start=2)]
    return "\n".join(reversed(lines)) + "\n"


def v2(path: str) -> str:
    return f"0::{path}\n"


def hybrid(path: str, unified: str = "/") -> str:
    """systemd's hybrid mode: v1 controllers carry the runtime path, the unified line may be "/"."""
    return v1(path) + f"0::{unified}\n"


CASES: dict[str, tuple[str, CgroupInfo]] = {
    "v2 docker systemd driver": (
        v2(f"/system.slice/docker-{CID}.scope"),
        CgroupInfo(f"/system.slice/docker-{CID}.scope", CID, "", "docker"),
    ),
    "v1 plain docker cgroupfs": (
        v1(f"/docker/{CID}"),
        CgroupInfo(f"/docker/{CID}", CID, "", "docker"),
    ),
    "v2 containerd burstable pod": (
        v2(f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_}.slice/cri-containerd-{CID}.scope"),
        CgroupInfo(
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_}.slice/cri-containerd-{CID}.scope",
            CID,
            POD,
            "containerd",
        ),
    ),
    "v2 cri-o besteffort pod": (
        v2(f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/crio-{CID}.scope"),
        CgroupInfo(
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/crio-{CID}.scope",
            CID,
            POD,
            "cri-o",
        ),
    ),
    "v2 guaranteed pod (no qos slice) with cri-dockerd": (
        v2(f"/kubepods.slice/kubepods-pod{POD_}.slice/docker-{CID}.scope"),
        CgroupInfo(f"/kubepods.slice/kubepods-pod{POD_}.slice/docker-{CID}.scope", CID, POD, "docker"),
    ),
    "v1 cgroupfs driver burstable": (
        v1(f"/kubepods/burstable/pod{POD}/{CID}"),
        CgroupInfo(f"/kubepods/burstable/pod{POD}/{CID}", CID, POD, ""),
    ),
    "v1 cgroupfs driver guaranteed": (
        v1(f"/kubepods/pod{POD}/{CID2}"),
        CgroupInfo(f"/kubepods/pod{POD}/{CID2}", CID2, POD, ""),
    ),
    "hybrid: unified line is / and v1 names the container": (
        hybrid(f"/kubepods/besteffort/pod{POD}/{CID}"),
        CgroupInfo("/", CID, POD, ""),
    ),
    "hybrid: unified line carries the systemd path": (
        hybrid(
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/cri-containerd-{CID}.scope",
            unified=f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/"
            f"cri-containerd-{CID}.scope",
        ),
        CgroupInfo(
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/cri-containerd-{CID}.scope",
            CID,
            POD,
            "containerd",
        ),
    ),
    "kind node: kubelet nested under its own slice": (
        v2(
            f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
            f"kubelet-kubepods-burstable-pod{POD_}.slice/cri-containerd-{CID}.scope"
        ),
        CgroupInfo(
            f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
            f"kubelet-kubepods-burstable-pod{POD_}.slice/cri-containerd-{CID}.scope",
            CID,
            POD,
            "containerd",
        ),
    ),
    "cri-o conmon: in the pod, not in the container": (
        v2(f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_}.slice/crio-conmon-{CID}.scope"),
        CgroupInfo(
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_}.slice/crio-conmon-{CID}.scope",
            "",
            POD,
            "",
        ),
    ),
    "v2 systemd service: no container": (
        v2("/system.slice/nginx.service"),
        CgroupInfo("/system.slice/nginx.service"),
    ),
    "v1 host process with a 32-hex sandbox memory cgroup: no container": (
        "9:name=systemd:/\n4:memory:/process_api/4ff6d15453c281964cacc00553d7b338\n1:cpu:/\n0::/\n",
        CgroupInfo("/"),
    ),
    "cgroup namespace: the container sees /": (
        v2("/"),
        CgroupInfo("/"),
    ),
    "v1 only, no name=systemd: first hierarchy names the path": (
        f"4:memory:/docker/{CID}\n3:cpu:/docker/{CID}\n",
        CgroupInfo(f"/docker/{CID}", CID, "", "docker"),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layouts_through_a_fake_proc(tmp_path: Path, name: str) -> None:
    text, expected = CASES[name]
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text(text)
    assert parse_cgroup_file(text) == expected
    assert read_cgroup(4242, str(tmp_path)) == expected


def test_process_cache_carries_container_and_pod(tmp_path: Path) -> None:
    text, expected = CASES["v2 containerd burstable pod"]
    d = tmp_path / "777"
    d.mkdir()
    (d / "cgroup").write_text(text)
    (d / "comm").write_text("nginx\n")
    (d / "cmdline").write_bytes(b"nginx\x00-g\x00daemon off;\x00")
    # comm with a space and a parenthesis: start ticks are the 22nd field after the last ')'.
    (d / "stat").write_text("777 (ng (x) inx) S 1 777 777 0 -1 4194560 " + " ".join(["0"] * 12) + " 98765 0 0\n")
    info = ProcessCache(asid=3, proc=str(tmp_path)).lookup(777)
    assert (info.container_id, info.pod_uid, info.cgroup) == (expected.container_id, expected.pod_uid, expected.path)
    assert info.start_ticks == 98765
    assert info.comm == "nginx" and info.cmdline == "nginx -g daemon off;"


def test_unreadable_process_names_nothing(tmp_path: Path) -> None:
    assert read_cgroup(999999, str(tmp_path)) == CgroupInfo("")


def test_live_process_reads() -> None:
    """The real /proc of this test process parses without error into a path (host: no container)."""
    import os

    info = read_cgroup(os.getpid())
    assert info.path.startswith("/")
