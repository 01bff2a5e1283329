"""Drive a simulator that runs in another process (``python -m mcp_tars.sim``).

``SimProcess.start()`` launches the CLI on a free port and waits until it
listens; ``RemoteSim`` wraps the ``/_sim/*`` control endpoints with the same
names as the in-process ``SimulatedAnthropic`` methods. Standard library only,
so it works wherever the sim does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

START_TIMEOUT_SECONDS = 20.0


class RemoteSim:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def bill(self) -> dict[str, Any]:
        """``{"lines": [...], "total_usd": float}``"""
        return self._call("GET", "/_sim/bill")

    def bill_total_usd(self) -> float:
        return self.bill()["total_usd"]

    def requests(self, since: int = 0) -> dict[str, Any]:
        """``{"requests": [...], "next": N}``: pass ``next`` as ``since`` to get only newer ones."""
        return self._call("GET", f"/_sim/requests?since={since}")

    def batches(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/batches")["batches"]

    def inject_faults(self, kind: str, count: int = 1, **options: Any) -> None:
        self._call("POST", "/_sim/faults", {"kind": kind, "count": count, **options})

    def fault_rate(self, rate: float, kinds: list[str] | None = None, seed: int = 0, **options: Any) -> None:
        settings = {"rate": rate, "seed": seed, **options}
        if kinds is not None:
            settings["kinds"] = list(kinds)
        self._call("POST", "/_sim/faults", settings)

    def fail_batch_requests(self, *custom_ids: str, **options: Any) -> None:
        self._call("POST", "/_sim/batch_failures", {"custom_ids": list(custom_ids), **options})

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change latency_s, output_tokens_per_s, batch_ready_after_polls, batch_error_rate
        or cache_minimum_tokens on the running sim; returns the current values."""
        return self._call("POST", "/_sim/config", settings)

    def reset(self) -> None:
        self._call("POST", "/_sim/reset")

    def healthy(self) -> bool:
        try:
            return bool(self._call("GET", "/_sim/health").get("ok"))
        except OSError:
            return False

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())


class SimProcess:
    """A simulator in a child process: ``with SimProcess.start() as sim: sim.base_url``."""

    def __init__(self, process: subprocess.Popen, base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.control = RemoteSim(base_url)

    @classmethod
    def start(cls, *cli_args: str, env: dict[str, str] | None = None) -> "SimProcess":
        """Launch ``python -m mcp_tars.sim --port 0`` with extra ``cli_args``; wait until it listens."""
        port_dir = tempfile.mkdtemp(prefix="mcp-tars-sim-")
        port_file = Path(port_dir) / "port"
        command = [sys.executable, "-m", "mcp_tars.sim", "--port", "0", "--port-file", str(port_file), *cli_args]
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        try:
            while not port_file.exists():
                if process.poll() is not None:
                    raise RuntimeError(f"the simulator exited with code {process.returncode} before listening")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the simulator did not listen within {START_TIMEOUT_SECONDS} s")
                time.sleep(0.02)
            port = int(port_file.read_text().strip())
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            if port_file.exists():
                os.unlink(port_file)
            os.rmdir(port_dir)
        return cls(process, f"http://127.0.0.1:{port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "SimProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
