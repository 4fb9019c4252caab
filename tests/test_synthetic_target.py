"""The synthetic scrape target of the collector comparison: N distinct series whose values
change every scrape, in shards or spread over targets, and its one-line refusals."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from loadtests import synthetic_target as st
from plumbing.errors import EdgebenchError
from plumbing.wait import wait_until

REPO = Path(__file__).resolve().parent.parent
LINE_RE = re.compile(r'^robot_sensor_value\{(?P<labels>[^}]*)\} (?P<value>-?\d+\.\d+)$')


def series_of(body: bytes) -> dict[str, float]:
    """label set -> value of every sample line (HELP/TYPE skipped)."""
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#"):
            continue
        m = LINE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        assert m["labels"] not in out, f"duplicate label set {m['labels']}"
        out[m["labels"]] = float(m["value"])
    return out


# ------------------------------------------------------------------ the target (pure)

def test_target_serves_n_distinct_series_whose_values_change_every_scrape():
    t = st.Target(1234, seed=3, bodies=3, shard_series=500)
    first, second = (series_of(b"".join(t.next_body(None))) for _ in range(2))
    assert len(first) == 1234 and set(first) == set(second)
    changed = sum(first[k] != second[k] for k in first)
    assert changed >= 0.95 * len(first), f"only {changed} of {len(first)} values changed"
    labels = next(iter(first))
    assert re.fullmatch(r'robot="r\d{3}",sensor="s\d{7}",kind="\w+",zone="zone-\d{2}"', labels)
    # the shards partition the series: 500 + 500 + 234, one header each
    shards = [series_of(b"".join(t.next_body(i))) for i in range(3)]
    assert [len(s) for s in shards] == [500, 500, 234]
    assert set().union(*shards) == set(first)
    assert b"".join(t.next_body(0)).count(b"# TYPE") == 1


def test_check_series_fits_refuses_what_the_memory_cannot_hold():
    st.check_series_fits(10_000, available=2**30)
    with pytest.raises(EdgebenchError) as e:
        st.check_series_fits(10_000_000, available=2**30)
    msg = str(e.value)
    assert "\n" not in msg and "fix: use at most" in msg
    fits = int(re.search(r"at most ([\d,]+)", msg)[1].replace(",", ""))
    st.check_series_fits(fits, available=2**30)          # the number it names does fit
    with pytest.raises(EdgebenchError):
        st.check_series_fits(fits + 1000, available=2**30)
    for bad in (0, -5, 2.5):
        with pytest.raises(EdgebenchError):
            st.check_series_fits(bad)


def test_target_command_line_refusal_is_one_line(capsys):
    assert st.main(["--series", "0"]) == 2
    assert st.main(["--series", "many"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("fix" in line or "see" in line for line in err)


@pytest.mark.slow
def test_target_exposition_passes_promtool_and_records_scrapes(free_ports):
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, "-m", "loadtests.synthetic_target", "--series", "3000",
                             "--port", str(port), "--shard-series", "1000"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.05)
        a = urllib.request.urlopen(base + "/metrics").read()
        b = urllib.request.urlopen(base + "/metrics").read()
        sa, sb = series_of(a), series_of(b)
        assert len(sa) == 3000 and set(sa) == set(sb) and sum(sa[k] != sb[k] for k in sa) > 2900
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=a, capture_output=True)
            assert check.returncode == 0, check.stdout + check.stderr
        assert len(series_of(urllib.request.urlopen(base + "/metrics/2").read())) == 1000
        # a scrape is recorded once its body is sent, by its own handler thread, which can
        # still be finishing when the client asks /stats on a new connection
        def stats_with_three():
            doc = json.loads(urllib.request.urlopen(base + "/stats").read())
            return doc if doc["scrapes_served"] >= 3 else None
        stats = wait_until(stats_with_three, 10, "the target to record the three scrapes", interval=0.02)
        assert stats["series"] == 3000 and stats["shards"] == 3 and stats["scrapes_served"] == 3
        assert [s["path"] for s in stats["scrapes"]] == ["/metrics", "/metrics", "/metrics/2"]
        assert stats["scrapes"][0]["bytes"] == len(a) and stats["body_bytes"] == len(a)
        assert all(s["ok"] and 0 <= s["send_s"] < 5 for s in stats["scrapes"])
    finally:
        proc.terminate()
        proc.wait(10)
