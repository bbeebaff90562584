"""Choosing free loopback ports that nothing else will take before they are bound.

A port found by binding to port 0 comes from the kernel's ephemeral range, which is
also where every outgoing connection's local port comes from: between choosing such
a port and a server binding it, a client connection in any process on the machine
can take it (``EADDRINUSE``). Ports are therefore drawn at random from *below* the
ephemeral range, checked by binding, and never handed out twice by one process.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", *, attempts: int = 200) -> int:
    """A port on ``host`` that is free now, outside the ephemeral range, and new to this process."""
    high = _ephemeral_low() - 1
    if high > _LOWEST:
        for _ in range(attempts):
            port = _LOWEST + secrets.randbelow(high - _LOWEST + 1)
            if port not in _handed_out and _bindable(host, port):
                _handed_out.add(port)
                return port
    # No room below the ephemeral range: fall back to the kernel's choice.
    with socket.socket() as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    _handed_out.add(port)
    return port
