"""What `status` and `down` print for one stack, read from a state.json written here (no
process starts: the stack's supervisor is recorded as gone), through the module and
through edgebench's own commands, which call it without a second argument parser."""
import json

from edgebench.cli import main as edgebench
from stack.status_view import show_status

STATE = {
    "engine": "native", "stack_id": "0badcafe", "supervisor_pid": None, "supervisor_starttime": None,
    "status": "stopped", "error": "service 'sensor-service' exited (code 2)", "cgroup_version": 1,
    "limits_enforced": False,
    "services": {"sensor-service": {
        "pid": None, "status": "exited", "health": "none", "url": "http://127.0.0.1:18000",
        "mem_limit_bytes": 50 * 2**20, "cpus": 0.5, "cgroups": {}, "restarts": 3, "oom_kills": 1}},
}


def write_state(d):
    d.mkdir(parents=True, exist_ok=True)
    (d / "state.json").write_text(json.dumps(STATE))
    return d


def test_one_stack_table_from_its_state(tmp_path, capsys):
    assert show_status(write_state(tmp_path / "stack")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("stack 0badcafe engine=native status=stopped (supervisor not running) "
                        "cgroup v1 limits_enforced=False")
    assert lines[1] == "warning: running UNCONFINED, memory and CPU limits are NOT enforced"
    assert lines[2] == "error: service 'sensor-service' exited (code 2)"
    assert lines[3].split() == ["service", "status", "health", "pid", "url", "mem", "limit", "cpus", "cpu%",
                                "cpu_s", "restarts", "ooms"]
    assert lines[4].split() == ["sensor-service", "exited", "none", "-", "http://127.0.0.1:18000", "-",
                                "50.0M", "0.5", "-", "-", "3", "1"]
    assert len(lines) == 5


def test_json_is_the_state_file_and_no_stack_is_exit_1(tmp_path, capsys):
    assert show_status(write_state(tmp_path / "stack"), as_json=True) == 0
    assert json.loads(capsys.readouterr().out) == STATE
    assert show_status(tmp_path / "empty") == 1
    assert capsys.readouterr().out == f"no stack in {tmp_path / 'empty'}\n"


def test_edgebench_status_and_down_for_one_state_dir(tmp_path, capsys):
    d = write_state(tmp_path / "stack")
    assert edgebench(["status", "--state-dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("stack 0badcafe engine=native") and "\nsensor-service " in out
    assert edgebench(["status", "--state-dir", str(d), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == STATE
    assert edgebench(["status", "--state-dir", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().out == f"no stack in {tmp_path / 'none'}\n"
    assert edgebench(["down", "--state-dir", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out == f"no stack in {tmp_path / 'none'}\n"


def test_a_supervisor_is_known_by_its_command_line_from_this_checkout_or_an_older_one():
    """`down` leaves alone a live stack another checkout started, whichever version started it."""
    from stack.registry import is_supervisor
    assert is_supervisor(["/venv/bin/python", "-m", "stack.supervisor", "--state-dir", "/s"])
    assert is_supervisor(["/venv/bin/python", "-m", "stack", "supervise", "--state-dir", "/s"])
    assert not is_supervisor(["/venv/bin/python", "-m", "service"])
    assert not is_supervisor(["/venv/bin/python", "-m", "stack.docker_engine", "--state-dir", "/s"])
