"""What the remote-inference tests share: a free port and ``llara serve`` started as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, *extra: str, log: Path, address_space: int | None = None) -> subprocess.Popen:
    """``llara serve`` on 127.0.0.1:port (the shipped demo model unless --model is in ``extra``), once healthy.

    ``address_space``: bytes of virtual memory the server may map (``prlimit --as``, set with setrlimit before exec):
    a request that would need gigabytes then fails the test with a MemoryError instead of exhausting the machine.
    """
    from llara_core.serving.client import RemoteError, wait_until_healthy

    def limit() -> None:
        if address_space is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    cmd = [sys.executable, "-m", "llara_core.apps.cli", "serve", "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=os.environ.copy(),
                            preexec_fn=limit if address_space is not None else None)  # fmt: skip
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/v1", 60, alive=lambda: proc.poll() is None)
    except RemoteError as exc:
        proc.kill()
        raise AssertionError(f"llara serve did not come up ({exc}): {log.read_text()[-2000:]}") from exc
    return proc
