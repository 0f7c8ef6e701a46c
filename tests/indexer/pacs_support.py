"""Test support for PACS ingest: a real Orthanc with the DICOMweb plugin on a free loopback port, phantom archives."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def available() -> bool:
    return Path(ORTHANC).is_file() and PLUGIN.is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancServer:
    """Start, stop and restart one Orthanc process; its storage survives a restart."""

    def __init__(self, folder: Path, *, users: dict[str, str] | None = None,
                 modalities: dict[str, list] | None = None):
        """``modalities``: DICOM peers Orthanc may send to (name -> [AE title, host, port]); with them its DICOM
        server is on."""
        self.folder = Path(folder)
        self.port = free_port()
        self.users = users or {}
        self.proc: subprocess.Popen | None = None
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "cmr-test",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "HttpPort": self.port,
            "DicomServerEnabled": bool(modalities),
            "DicomPort": free_port(),
            "DicomModalities": modalities or {},
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "Plugins": [str(PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            "OrthancExplorerEnabled": False,
            "HttpCompressionEnabled": False,
            "StorageCompression": False,
            "ConcurrentJobs": 1,
        }
        self.config = self.folder / "orthanc.json"
        self.config.write_text(json.dumps(config, indent=1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def _auth(self) -> tuple[str, str] | None:
        return next(iter(self.users.items()), None)

    def start(self, timeout: float = 30.0) -> None:
        log = (self.folder / "orthanc.log").open("ab")
        self.proc = subprocess.Popen([ORTHANC, str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}; see {self.folder / 'orthanc.log'}")
            try:
                if requests.get(f"{self.url}/system", auth=self._auth(), timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("Orthanc did not answer /system in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def instance_count(self) -> int:
        return requests.get(f"{self.url}/statistics", auth=self._auth(), timeout=10).json()["CountInstances"]

    def upload(self, files: list[Path], threads: int = 2) -> int:
        """POST every file to /instances; returns how many Orthanc accepted."""
        session = requests.Session()
        session.auth = self._auth()

        def post(path: Path) -> bool:
            return session.post(f"{self.url}/instances", data=path.read_bytes(), timeout=60).ok

        with ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(post, files))


_ARCHIVES: dict[tuple[int, int], Path] = {}


def phantom_archive(base: Path, n_studies: int, seed: int) -> Path:
    """A phantom archive, written once per test session and shared by the modules that ask for it."""
    from phantom.archive import synthesize

    key = (n_studies, seed)
    if key not in _ARCHIVES:
        out = Path(base) / f"phantom-{n_studies}-{seed}"
        synthesize(out, n_studies, seed=seed, progress=False)
        _ARCHIVES[key] = out
    return _ARCHIVES[key]


def ingested_archive(base: Path, n_studies: int, seed: int) -> str:
    """A phantom archive ingested (scanned, preprocessed) into a fresh SQLite catalog under ``base``; its URL."""
    from indexer.pipeline import Ingest
    from migrations.apply import upgrade

    archive = phantom_archive(base, n_studies, seed)
    settings = make_settings(Path(base) / "data")
    url = settings.resolved_database_url()
    upgrade(url)
    Ingest.folder(settings, archive / "dicom", db_url=url).run(progress=False)
    return url


def archive_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def make_settings(data_dir: Path, **fields):
    """The typed settings of a test run: data under ``data_dir``, one worker, quick PACS retries."""
    from catalog.settings import Settings

    base = dict(
        data_dir=data_dir, workers=1, pseudonym_salt="test-salt",
        pacs_concurrency=2, pacs_retries=1, pacs_backoff_s=0.05, pacs_timeout_s=10.0,
    )  # fmt: skip
    return Settings(**{**base, **fields})
