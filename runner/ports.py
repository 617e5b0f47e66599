"""Port checks that give a clear message instead of a traceback."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path


class PortInUse(RuntimeError):
    pass


def ensure_port_free(port: int, what: str, host: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortInUse(
                f"port {port} on {host} is already in use, so {what} cannot start there. "
                f"Stop whatever holds it (`ss -ltnp 'sport = :{port}'` shows it) or choose another port."
            ) from None


def _ephemeral_ports_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# Ports this process has handed out: free now is not free for long. Asked for several ports
# before anything listens on them (a whole platform's settings), the random pick below gave
# the same port twice once in a test run (PostgreSQL and Temporal on one port).
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, below the kernel's range of ephemeral ports: a server started on it
    again later (a supervised restart) does not find it taken as the local port of some
    outgoing connection, which the kernel picks from that range. Never one this process was
    given before."""
    import random

    ceiling = _ephemeral_ports_start() - 1
    for _ in range(200):
        port = random.randint(min(20000, ceiling - 1000), ceiling)
        if port not in _handed_out and _bindable(host, port):
            _handed_out.add(port)
            return port
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port that child processes inherit (pass_fds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def wait_for_http(url: str, timeout: float) -> bool:
    """Until GET url answers 200 (each try gives up after a second)."""
    import time
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # (straight to our own port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=1) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.1)
    return False


def die_with_parent(sig: int = 15) -> Callable[[], None]:
    """A preexec_fn for processes we start: Linux sends them `sig` (SIGTERM by default;
    PostgreSQL takes SIGINT, its fast shutdown) when our process dies, even by SIGKILL or a
    crash, so no server, worker or API outlives its owner."""
    import ctypes
    import os
    import sys

    parent = os.getpid()
    # Loaded here, in the parent: nothing but the prctl call runs in the forked child.
    libc = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None

    def arm() -> None:
        if libc is not None:
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, sig)
            if os.getppid() != parent:  # the parent died before the signal was armed
                os._exit(1)

    return arm


def stop_process(proc, sig: int, timeout: float = 30.0) -> None:
    """Stops a server we started, by its own pid: `sig` first, SIGKILL if it hangs."""
    import subprocess

    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
