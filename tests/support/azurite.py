"""Running the Azurite blob emulator for tests.

``start_azurite(workdir)`` launches ``azurite-blob`` (installed by ``scripts/install_azurite.sh``
into ``${ORCH_CACHE:-~/.cache/orch}/azurite``; the script is run when it is missing) on a free
port of 127.0.0.1, waits until it answers HTTP and returns an ``Azurite`` handle. ``stop()``
terminates it, then kills it if it lingers (also at interpreter exit, should a test forget);
the handle is also a context manager.
"""
from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "install_azurite.sh"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published, well-known development account key (not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3


class AzuriteError(RuntimeError):
    """Azurite could not be installed or started."""


@dataclass
class Azurite:
    """A running Azurite blob service."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    account: str = AZURITE_ACCOUNT
    key: str = AZURITE_KEY

    @property
    def blob_url(self) -> str:
        """Blob endpoint of the account, e.g. ``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"http://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        """Connection string for azure-storage-blob's ``from_connection_string``."""
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
                f"BlobEndpoint={self.blob_url};")

    def stop(self) -> None:
        """Terminate Azurite (its whole process group), killing it if it does not exit."""
        atexit.unregister(self.stop)
        if self.process.poll() is not None:
            return
        _signal_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(self.process, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def azurite_executable() -> Path:
    """Path of ``azurite-blob``, installing the pinned Azurite first when it is missing."""
    cache = Path(os.environ.get("ORCH_CACHE") or Path.home() / ".cache" / "orch")
    executable = cache / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if not executable.exists():
        result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True)
        if result.returncode != 0 or not executable.exists():
            raise AzuriteError(f"installing Azurite with {INSTALL_SCRIPT} failed:\n{result.stderr[-2000:]}")
    return executable


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}?comp=list", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer (e.g. 403 for an unsigned request) means it is up
    except (urllib.error.URLError, OSError):
        return False


def _launch(executable: Path, workdir: Path, port: int) -> Azurite:
    log = open(workdir / "azurite.log", "ab")
    command = [str(executable), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
               str(workdir / "data"), "--skipApiVersionCheck", "--disableTelemetry", "--loose"]
    with log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    return Azurite(process, port, workdir)


def start_azurite(workdir: Path) -> Azurite:
    """Start Azurite with its data and log (``azurite.log``) under ``workdir``; wait until it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    executable = azurite_executable()
    for _ in range(PORT_ATTEMPTS):
        azurite = _launch(executable, workdir, _free_port())
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and azurite.process.poll() is None:
            if _answers(azurite.port):
                atexit.register(azurite.stop)
                return azurite
            time.sleep(0.1)
        azurite.stop()  # exited early (e.g. the port was taken meanwhile) or never answered
    log_tail = (workdir / "azurite.log").read_text(errors="replace")[-2000:]
    raise AzuriteError(f"Azurite did not start within {STARTUP_TIMEOUT_S:.0f}s; log:\n{log_tail}")
