"""sd_notify protocol against a real unix datagram socket, as systemd would receive it."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from consulha.ops.sdnotify import LoopNotifier, Notifier


@pytest.fixture
def receiver(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def received(sock) -> list[str]:
    """Every datagram waiting on the socket, each as its text."""
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        return messages
    finally:
        sock.settimeout(2)


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.send(READY="1") is False
    LoopNotifier(notifier).cycle_completed("standby")  # no error, no socket


def test_ready_and_status_in_one_datagram(receiver):
    path, sock = receiver
    assert Notifier({"NOTIFY_SOCKET": path}).send(READY="1", STATUS="leader, epoch 7")
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=leader, epoch 7"


def test_abstract_namespace_socket():
    name = f"consulha-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send(STATUS="x")
        assert sock.recv(4096) == b"STATUS=x"


def test_send_to_a_vanished_socket_does_not_raise(tmp_path):
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).send(READY="1") is False


@pytest.mark.parametrize("env, expected", [
    ({"WATCHDOG_USEC": "20000000"}, 20.0),
    ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}, 20.0),
    ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),   # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval(env, expected):
    assert Notifier(env).watchdog_interval == expected


def test_loop_notifier_sequence(receiver):
    path, sock = receiver
    loop = LoopNotifier(Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}))
    loop.alive()
    loop.cycle_completed("standby, epoch none")
    loop.alive()
    loop.cycle_completed("standby, epoch none")   # unchanged: no STATUS
    loop.cycle_completed("leader, epoch 12")
    loop.stopping()
    assert received(sock) == [
        "WATCHDOG=1",
        "READY=1\nSTATUS=standby, epoch none",
        "WATCHDOG=1",
        "STATUS=leader, epoch 12",
        "STOPPING=1\nSTATUS=stopping: releasing the lock",
    ]


def test_no_watchdog_pings_when_systemd_set_no_watchdog(receiver):
    path, sock = receiver
    LoopNotifier(Notifier({"NOTIFY_SOCKET": path})).alive()
    assert received(sock) == []


def host_notifier(path, groups=("app", "billing"), grace=30.0, clock=None):
    from consulha.ops.sdnotify import HostNotifier

    now = clock or (lambda: 0.0)
    return HostNotifier(groups, Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}),
                        ready_grace=grace, clock=now)


def test_host_is_ready_once_every_group_knows_its_role(receiver):
    path, sock = receiver
    host = host_notifier(path)
    app, billing = host.for_group("app"), host.for_group("billing")
    app.alive()
    app.cycle_completed("leader, epoch 7")
    assert received(sock) == []   # billing has not completed a cycle yet
    billing.alive()               # now every loop has come round: one ping
    billing.cycle_completed("standby, epoch None")
    billing.cycle_completed("standby, epoch None")   # unchanged: nothing
    app.cycle_completed("standby, epoch 8")
    app.stopping()
    billing.stopping()            # one STOPPING for the host
    assert received(sock) == [
        "WATCHDOG=1",
        "READY=1\nSTATUS=app: leader, epoch 7; billing: standby, epoch None",
        "STATUS=app: standby, epoch 8; billing: standby, epoch None",
        "STOPPING=1\nSTATUS=stopping: releasing the locks",
    ]


def test_host_watchdog_waits_for_every_group(receiver):
    """One wedged group stops the pings: systemd then kills the host, as it would a wedged
    single agent; pings from the other groups alone do not hide it."""
    path, sock = receiver
    host = host_notifier(path)
    app, billing = host.for_group("app"), host.for_group("billing")
    for _ in range(5):
        app.alive()
    assert received(sock) == []
    billing.alive()
    app.alive()
    billing.alive()
    assert received(sock) == ["WATCHDOG=1", "WATCHDOG=1"]


def test_host_ready_after_grace_without_a_group_that_never_completes(receiver):
    path, sock = receiver
    now = [0.0]
    host = host_notifier(path, grace=30.0, clock=lambda: now[0])
    app = host.for_group("app")
    app.cycle_completed("leader, epoch 7")
    assert received(sock) == []
    now[0] = 31.0
    app.cycle_completed("leader, epoch 7")
    assert received(sock) == ["READY=1\nSTATUS=app: leader, epoch 7; billing: starting"]


def test_host_with_no_notify_socket_sends_nothing():
    from consulha.ops.sdnotify import HostNotifier

    host = HostNotifier(["app"], Notifier({}))
    host.for_group("app").alive()
    host.for_group("app").cycle_completed("leader, epoch 1")
    host.for_group("app").stopping()
