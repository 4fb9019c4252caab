"""plumbing/: atomic files leave a complete file or none, never a temporary behind."""
import os

import pytest

from plumbing.errors import EdgebenchError
from plumbing.files import read_json, write_atomic, write_json_atomic


def test_write_variants_and_no_temporaries(tmp_path):
    write_json_atomic(tmp_path / "a" / "x.json", {"a": 1})
    write_atomic(tmp_path / "b.bin", b"xy")
    write_atomic(tmp_path / "c.txt", lambda p: p.write_text("hi"))
    assert read_json(tmp_path / "a" / "x.json") == {"a": 1}
    assert (tmp_path / "b.bin").read_bytes() == b"xy"
    assert (tmp_path / "c.txt").read_text() == "hi"
    assert os.stat(tmp_path / "c.txt").st_mode & 0o777 == 0o644
    assert sorted(os.listdir(tmp_path)) == ["a", "b.bin", "c.txt"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "x.txt"
    write_atomic(target, "old")

    def boom(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, boom)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_error_is_one_line_with_exit_2():
    e = EdgebenchError("budgets.yml: no 'budgets' list: add one")
    assert e.exit_code == 2 and "\n" not in str(e)


def test_wait_until_returns_the_first_truthy_value():
    from plumbing.wait import wait_until
    calls = iter([0, None, "", 7, 8])
    assert wait_until(lambda: next(calls), timeout=5, what="a value", interval=0) == 7


def test_wait_until_names_what_it_waited_for_and_checks_once_more_at_the_deadline():
    from plumbing.wait import WaitTimeout, wait_until
    calls = []
    with pytest.raises(WaitTimeout, match=r"timed out after 0.05 s waiting for the moon"):
        wait_until(lambda: calls.append(1), timeout=0.05, what="the moon", interval=0.01)
    assert len(calls) >= 2
