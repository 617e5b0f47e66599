"""One API process on a listening socket it inherits: `make run` binds the API's address once
and starts API_PROCESSES of these on it (runner/run.py), so the kernel spreads connections
over them and one that dies leaves the others serving.

    python -m api.serve --fd N

(uvicorn's own --fd takes the descriptor for a Unix socket; a TCP one would then report its
peers wrongly, and the peer's address is what the request limits count.)"""

from __future__ import annotations

import argparse
import socket

import uvicorn

from core.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket's descriptor")
    args = parser.parse_args()
    settings = get_settings()
    listening = socket.socket(fileno=args.fd)  # (family and type read from the descriptor)
    config = uvicorn.Config(
        "api.main:app_factory",
        factory=True,
        # (the socket decides where it listens; these only name it in uvicorn's first line)
        host=settings.API_HOST,
        port=settings.API_PORT,
        log_level=settings.API_LOG_LEVEL,
        access_log=settings.API_ACCESS_LOG,
        # The app reads X-Forwarded-For itself, from TRUSTED_PROXIES only.
        proxy_headers=False,
    )
    uvicorn.Server(config).run(sockets=[listening])


if __name__ == "__main__":
    main()
