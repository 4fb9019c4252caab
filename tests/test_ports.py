"""The one port picker: free, distinct, and outside the kernel's ephemeral range, where
outgoing connections take their local ports (a picked port taken by one of them before
the server bound it was a real failure)."""
import socket

from plumbing import ports


def _ephemeral() -> range:
    low, high = (int(v) for v in ports.EPHEMERAL_RANGE.read_text().split())
    return range(low, high + 1)


def test_picked_ports_are_free_and_outside_the_ephemeral_range():
    picked = ports.free_ports(50)
    assert len(set(picked)) == 50
    assert not [p for p in picked if p in _ephemeral()]
    for p in picked[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))        # would raise if it were taken


def test_a_busy_port_is_busy_and_never_picked(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.free_port()))
        s.listen()
        busy, free = s.getsockname()[1], ports.free_port()
        assert ports.port_busy(busy) and not ports.port_busy(free)
        monkeypatch.setattr(ports, "_candidates", lambda: (busy, free))
        assert {ports.free_port() for _ in range(20)} == {free}


def test_without_a_range_outside_the_ephemeral_one_the_kernel_picks(monkeypatch):
    monkeypatch.setattr(ports, "_candidates", lambda: range(0))
    port = ports.free_port()
    assert 0 < port < 65536 and not ports.port_busy(port)
