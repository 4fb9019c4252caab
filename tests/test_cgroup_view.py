"""A native service reads its own limits at /sys/fs/cgroup, as it would inside a container.

The mount-table parsing is pure; the rest starts real children in real cgroups (root only)."""
import os
import secrets
import subprocess
import sys
import tempfile
import urllib.request

import pytest

from stack import cgroup_limits
from stack.cgroup_view import CgroupMount, check_view, plan_view

V1_SEPARATE = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory,clone_children
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd,release_agent=/x
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
22 1 0:21 / /proc rw - proc proc rw
"""
V2 = """\
22 1 0:21 / /proc rw - proc proc rw
29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""


def test_plan_view_v1_keeps_each_hierarchy_and_its_controllers():
    plan = plan_view(V1_SEPARATE)
    assert plan.tmpfs is True
    assert plan.mounts == [
        CgroupMount("cgroup", "/sys/fs/cgroup/cpu", "cpu"),
        CgroupMount("cgroup", "/sys/fs/cgroup/memory", "memory"),
        CgroupMount("cgroup", "/sys/fs/cgroup/systemd", "xattr,name=systemd"),
        CgroupMount("cgroup2", "/sys/fs/cgroup/unified", ""),
    ]


def test_plan_view_v2_is_one_mount_without_tmpfs():
    plan = plan_view(V2)
    assert plan.tmpfs is False
    assert plan.mounts == [CgroupMount("cgroup2", "/sys/fs/cgroup", "")]


def test_plan_view_without_cgroups_changes_nothing():
    assert plan_view("22 1 0:21 / /proc rw - proc proc rw\n") is None


needs_root = pytest.mark.skipif(os.geteuid() != 0 or cgroup_limits.detect_version() is None,
                                reason="needs root and a cgroup file system")

READ_OWN_LIMITS = r"""
import os
root = "/sys/fs/cgroup"
if os.path.exists(root + "/memory.max"):                      # v2
    mem = open(root + "/memory.max").read().strip()
    quota, period = open(root + "/cpu.max").read().split()
else:                                                          # v1
    mem = open(root + "/memory/memory.limit_in_bytes").read().strip()
    quota = open(root + "/cpu/cpu.cfs_quota_us").read().strip()
    period = open(root + "/cpu/cpu.cfs_period_us").read().strip()
print(mem, int(quota) / int(period), open("/proc/self/cgroup").read().split("\n")[0].rsplit(":", 1)[1])
"""


@pytest.mark.slow
@needs_root
def test_a_child_reads_its_own_limits_and_the_host_keeps_its_mounts(tmp_path):
    from stack.native import spawn
    before = open("/proc/self/mountinfo").read()
    cg = cgroup_limits.ServiceCgroup.create(f"edgebench-test-view-{secrets.token_hex(3)}", 50 * 2**20, None, 0.5)
    try:
        log = tmp_path / "child.log"
        p = spawn([sys.executable, "-c", READ_OWN_LIMITS], {}, str(tmp_path), log, cg, append=False,
                  view=plan_view())
        assert p.wait(timeout=30) == 0, log.read_text()
        mem, cpus, own_path = log.read_text().split()
        assert int(mem) == 52428800 and float(cpus) == 0.5 and own_path == "/"
    finally:
        assert cg.remove()
    assert open("/proc/self/mountinfo").read() == before  # nothing leaked into the host's mounts


@pytest.mark.slow
@needs_root
def test_check_view_says_the_view_works_here(repo_root):
    assert check_view(str(repo_root)) is None


@pytest.mark.slow
@needs_root
def test_victoriametrics_sizes_itself_from_its_own_limits(free_ports):
    """VictoriaMetrics' own gauges: 150 MB and 0.5 cores (the compose limits), not the host's."""
    from stack.api import start_stack
    (port,) = free_ports(1)
    with tempfile.TemporaryDirectory() as d:
        with start_stack(state_dir=d, services=["victoriametrics"], engine="native",
                         ports={"victoriametrics": port}) as h:
            assert h.state().cgroup_view == "own"
            text = urllib.request.urlopen(h.url("victoriametrics") + "/metrics", timeout=5).read().decode()
    gauges = dict(line.split(" ", 1) for line in text.splitlines()
                  if line.startswith(("process_memory_limit_bytes ", "process_cpu_cores_available ", "go_gomaxprocs ")))
    assert float(gauges["process_memory_limit_bytes"]) == 150 * 2**20
    assert float(gauges["process_cpu_cores_available"]) == 0.5
    assert float(gauges["go_gomaxprocs"]) == 1


@pytest.mark.slow
@needs_root
def test_the_host_view_is_kept_on_request(free_ports):
    """EDGEBENCH_CGROUP_VIEW=host: the old behaviour, for comparing the two."""
    (port,) = free_ports(1)
    env = dict(os.environ, EDGEBENCH_CGROUP_VIEW="host")
    code = ("import sys; from stack.api import start_stack\n"
            f"with start_stack(state_dir=sys.argv[1], services=['victoriametrics'], engine='native', "
            f"ports={{'victoriametrics': {port}}}) as h: print(h.state().cgroup_view)")
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, "-c", code, d], env=env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "host"
