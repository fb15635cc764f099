"""Free loopback ports, so parallel runs never collide."""

import socket


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """Return a port that is free for both TCP and UDP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port found after 50 tries")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (free_port alone may hand out a port twice in a row)."""
    ports: list[int] = []
    for _ in range(count * 20):
        port = free_port()
        if port not in ports:
            ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"no {count} distinct free loopback ports found")
