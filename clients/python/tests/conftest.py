"""Fixtures: a real `ecrm serve` for the tests marked ``server``.

The binary is $ECRM_BINARY (default <repo>/build/ecrm). It runs on a fresh temp data dir and a free
loopback port (``--http-addr 127.0.0.1:0``; the port is read from <data-dir>/ecrm.addr), with the
credentials it generates in <data-dir>/credentials.yaml. A missing binary FAILS the server tests;
ECRM_SKIP_SERVER_TESTS=1 skips them instead. ECRM_KEEP_DATA=1 keeps the data dir and log.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

import pytest

from ecrm_client import Client, EcrmError

REPO = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT_S = 20.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("ECRM_SKIP_SERVER_TESTS", "") not in ("", "0"):
        skip = pytest.mark.skip(reason="ECRM_SKIP_SERVER_TESTS is set")
        for item in items:
            if "server" in item.keywords:
                item.add_marker(skip)


class EcrmProcess:
    """One `ecrm serve` child process; `stop()` always ends it."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="ecrm-pyclient-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "ecrm.log"
        self.proc: Optional[subprocess.Popen] = None
        self.base_url = ""
        self.credentials: dict[str, str] = {}
        self.initial_rules: object = None

    @property
    def admin_token(self) -> str:
        return self.credentials["admin_token"]

    @property
    def write_key(self) -> str:
        # The server key: these tests send identity claims that must be trusted.
        return self.credentials["server_write_key"]

    def log_tail(self, limit: int = 8000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True)
        args = [str(self.binary), "serve", "--http-addr", "127.0.0.1:0", "--data-dir", str(self.data_dir),
                "--workers", "2", "--log-level", "info"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        addr = self._wait(deadline, self._read_addr, "for ecrm.addr")
        self.base_url = f"http://{addr}"
        self._wait(deadline, self._ready, f"for GET {self.base_url}/readyz to answer 200")
        self.credentials = self._read_credentials()

    def _wait(self, deadline: float, probe, what: str):
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                self._fail(f"ecrm exited during start-up with code {self.proc.returncode}")
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                self._fail(f"timed out waiting {what}")
            time.sleep(0.03)

    def _read_addr(self) -> Optional[str]:
        try:
            text = (self.data_dir / "ecrm.addr").read_text().strip()
        except OSError:
            return None
        return text if text.startswith("127.0.0.1:") and not text.endswith(":0") else None

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/readyz", timeout=2) as res:
                return res.status == 200
        except OSError:
            return False

    def _read_credentials(self) -> dict[str, str]:
        path = self.data_dir / "credentials.yaml"
        creds = {}
        for line in path.read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.lstrip().startswith("#"):
                creds[key.strip()] = value.strip().strip("'\"")
        if "server_write_key" not in creds and creds.get("write_key"):  # a file from before key kinds
            creds["server_write_key"] = creds["write_key"]
        for key in ("server_write_key", "admin_token", "read_key"):
            if not creds.get(key):
                self._fail(f"{path} has no {key}")
        return creds

    def _fail(self, message: str) -> None:
        self.stop()
        pytest.fail(f"{message}\n--- ecrm log ({self.log_path}) ---\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        if not os.environ.get("ECRM_KEEP_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def ecrm_server() -> Iterator[EcrmProcess]:
    """A running ecrm for the whole session (the tests share it; each pushes the rules it needs)."""
    binary = Path(os.environ.get("ECRM_BINARY") or REPO / "build" / "ecrm").resolve()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"ecrm binary not found or not executable: {binary}\n"
            "Build it (make build) or point ECRM_BINARY at it; ECRM_SKIP_SERVER_TESTS=1 skips the server tests.",
            pytrace=False,
        )
    server = EcrmProcess(binary)
    try:
        server.start()
        # What a fresh server reports before any test pushes rules (or the error it answered).
        try:
            server.initial_rules = Client(server.base_url, server.admin_token).get_rules()
        except EcrmError as e:
            server.initial_rules = e
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def client(ecrm_server: EcrmProcess) -> Client:
    return Client(ecrm_server.base_url, ecrm_server.admin_token)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Adds the tail of the server's log to the report of a failed server test."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("ecrm_server")
    if report.failed and isinstance(server, EcrmProcess):
        report.sections.append(("ecrm server log (tail)", server.log_tail(4000)))
