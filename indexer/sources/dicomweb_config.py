"""PACS connection and fetch settings, taken from the one settings object (fields ``pacs_*``, defaults there)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from catalog.settings import Settings


@dataclass(frozen=True)
class PacsConfig:
    """The ``pacs_*`` settings, checked; built with :meth:`from_settings` (catalog.settings holds the defaults)."""

    auth: Literal["none", "basic", "bearer"]
    user: str
    password: str
    token: str
    concurrency: int  # studies fetched at once
    timeout_s: float  # per HTTP request (connect and read)
    retries: int  # further attempts per study after the first, for transient faults
    backoff_s: float  # first wait between attempts; doubles each time
    modality: str  # ModalitiesInStudy filter of the study listing
    description_pattern: str  # study or series description must match

    def __post_init__(self) -> None:
        if self.auth not in ("none", "basic", "bearer"):
            raise ValueError(f"pacs_auth must be none, basic or bearer, not {self.auth!r}")
        if self.auth == "basic" and not self.user:
            raise ValueError("pacs_auth=basic needs pacs_user and pacs_password")
        if self.auth == "bearer" and not self.token:
            raise ValueError("pacs_auth=bearer needs pacs_token")
        if self.concurrency < 1:
            raise ValueError("pacs_concurrency must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> PacsConfig:
        return cls(
            auth=settings.pacs_auth,
            user=settings.pacs_user,
            password=settings.pacs_password,
            token=settings.pacs_token,
            concurrency=settings.pacs_concurrency,
            timeout_s=settings.pacs_timeout_s,
            retries=settings.pacs_retries,
            backoff_s=settings.pacs_backoff_s,
            modality=settings.pacs_modality,
            description_pattern=settings.pacs_description_pattern,
        )
