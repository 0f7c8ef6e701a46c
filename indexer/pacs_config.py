"""PACS connection and fetch settings, read from the one settings object (fields ``pacs_*``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Study or series descriptions that mark a cardiac MR study, in the languages of the sites we know.
DEFAULT_DESCRIPTION_PATTERN = r"(?i)card|heart|herz|kardio|\bcmr\b|coronar|myocard|\bcine\b"


@dataclass(frozen=True)
class PacsConfig:
    auth: Literal["none", "basic", "bearer"] = "none"
    user: str = ""
    password: str = ""
    token: str = ""
    concurrency: int = 4  # studies fetched at once
    timeout_s: float = 30.0  # per HTTP request (connect and read)
    retries: int = 3  # further attempts per study after the first, for transient faults
    backoff_s: float = 1.0  # first wait between attempts; doubles each time
    modality: str = "MR"  # ModalitiesInStudy filter of the study listing
    description_pattern: str = DEFAULT_DESCRIPTION_PATTERN  # study or series description must match

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
    def from_settings(cls, settings: Any) -> PacsConfig:
        """Every ``pacs_*`` field of the settings, with the defaults above where a field is absent."""
        defaults = cls()
        return cls(
            **{
                name: getattr(settings, f"pacs_{name}", getattr(defaults, name))
                for name in cls.__dataclass_fields__  # type: ignore[attr-defined]
            }
        )
