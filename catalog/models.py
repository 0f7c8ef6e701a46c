"""ORM models of the catalog (SQLAlchemy 2).

The integer primary key of ``Study`` is also the study's FAISS id: one id space, no mapping files.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class StudyState:
    """Life cycle of a study in the catalog (stored as a string)."""

    SCANNED = "scanned"  # headers read, series classified
    PREPROCESSED = "preprocessed"  # clip file written
    FAILED = "failed"  # preprocessing failed; see ingest_errors
    WITHDRAWN = "withdrawn"  # consent withdrawn / deleted: never returned by search


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    accession: Mapped[str | None] = mapped_column(String(64), index=True)
    # Identifiers: shown to clinicians only.
    patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(String(200))
    patient_birth_date: Mapped[dt.date | None] = mapped_column(Date)
    # Pseudonymous patient key (salted hash of the patient id): splits, "same patient", researcher views.
    patient_key: Mapped[str] = mapped_column(String(32), index=True)
    patient_age: Mapped[int | None] = mapped_column(Integer)
    patient_sex: Mapped[str | None] = mapped_column(String(1))
    patient_weight_kg: Mapped[float | None] = mapped_column(Float)
    patient_height_m: Mapped[float | None] = mapped_column(Float)
    study_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    study_description: Mapped[str | None] = mapped_column(String(200))
    institution: Mapped[str | None] = mapped_column(String(200))
    manufacturer: Mapped[str | None] = mapped_column(String(100))
    scanner_model: Mapped[str | None] = mapped_column(String(100))
    field_strength: Mapped[float | None] = mapped_column(Float)
    # Where the study came from: "folder" (source_ref = archive root) or "dicomweb" (source_ref = server URL).
    source: Mapped[str] = mapped_column(String(16), default="folder")
    source_ref: Mapped[str | None] = mapped_column(Text)
    views: Mapped[list[Any]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default=StudyState.SCANNED, index=True)
    # Fingerprint of the study's files (paths, sizes, mtimes): unchanged studies are skipped on re-ingest.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    preprocess_version: Mapped[str | None] = mapped_column(String(32))
    clip_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now(), onupdate=func.now())

    series: Mapped[list[Series]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="Series.series_number"
    )
    report: Mapped[Report | None] = relationship(back_populates="study", uselist=False)


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_number: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(String(200))
    view: Mapped[str] = mapped_column(String(16), index=True)
    # How the view was decided: "name", "geometry", or "name+geometry".
    view_basis: Mapped[str] = mapped_column(String(32), default="name")
    n_slices: Mapped[int] = mapped_column(Integer, default=1)
    n_phases: Mapped[int] = mapped_column(Integer, default=1)
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    pixel_spacing_mm: Mapped[float | None] = mapped_column(Float)
    slice_thickness_mm: Mapped[float | None] = mapped_column(Float)
    transfer_syntax: Mapped[str | None] = mapped_column(String(64))
    # Unit normal of the image plane (patient coordinates) of the first instance.
    normal: Mapped[list[Any] | None] = mapped_column(JSON)
    # Ordered frames: [[path, slice_index, phase_index, frame_number], ...]; frame_number is the frame
    # inside a multi-frame file (0 for single-frame files).
    frames: Mapped[list[Any]] = mapped_column(JSON, default=list)

    study: Mapped[Study] = relationship(back_populates="series")


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    accession: Mapped[str] = mapped_column(String(64), unique=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"), index=True)
    report_date: Mapped[dt.date | None] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text)
    impression: Mapped[str | None] = mapped_column(Text)
    findings: Mapped[str | None] = mapped_column(Text)

    study: Mapped[Study | None] = relationship(back_populates="report")
    facts: Mapped[ReportFactsRow | None] = relationship(
        back_populates="report", uselist=False, cascade="all, delete-orphan", passive_deletes=True
    )


class ReportFactsRow(Base):
    """What a report states, read by ``cmrclip.language`` (findings, diagnoses, LGE, numbers): no identifiers.

    The numbers the search filters and ranks on are columns; ``facts`` holds the whole ``ReportFacts.to_json()``.
    Full-text search of the report text needs no table here: a GIN index on ``to_tsvector(text)`` (PostgreSQL) or
    the FTS5 table ``reports_fts`` (SQLite), both made by revision 0003 (see ``catalog.facts``).
    """

    __tablename__ = "report_facts"

    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[str] = mapped_column(String(16))  # of the extraction rules (indexer.reports.FACTS_VERSION)
    lvef: Mapped[float | None] = mapped_column(Float)
    rvef: Mapped[float | None] = mapped_column(Float)
    lvedvi: Mapped[float | None] = mapped_column(Float)
    rvedvi: Mapped[float | None] = mapped_column(Float)
    lv_mass_index: Mapped[float | None] = mapped_column(Float)
    max_wall_thickness_mm: Mapped[float | None] = mapped_column(Float)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now(), onupdate=func.now())

    report: Mapped[Report] = relationship(back_populates="facts")


class ReportVersion(Base):
    """Every version of a report the RIS sent (HL7 ORU, FHIR DiagnosticReport), kept for audit.

    The ``reports`` row holds the version that wins: the newest by the RIS's own time (``observed_at``: OBR-22 /
    MSH-7, FHIR ``issued``) among final, corrected and amended ones. A preliminary one counts only while no final
    exists; a cancelled one is kept here and changes nothing.
    """

    __tablename__ = "report_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    accession: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(16))  # hl7 | fhir
    status: Mapped[str] = mapped_column(String(16))  # final | corrected | amended | preliminary | cancelled
    observed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())
    applied: Mapped[bool] = mapped_column(Boolean, default=False)  # became the current report when received
    text: Mapped[str] = mapped_column(Text)


class IngestError(Base):
    __tablename__ = "ingest_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str | None] = mapped_column(Text)
    study_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    stage: Mapped[str] = mapped_column(String(16))  # scan | preprocess | report | fetch
    kind: Mapped[str] = mapped_column(String(32))  # short machine-readable category
    reason: Mapped[str] = mapped_column(Text)  # readable reason
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (UniqueConstraint("path", "study_uid", "stage", "kind", name="uq_ingest_error"),)


class StudyVector(Base):
    """Durable vector store: the FAISS index is a rebuildable cache of these rows."""

    __tablename__ = "study_vectors"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    checkpoint_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "video" | "report"
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float16, L2-normalised
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())


class IndexBuild(Base):
    """One FAISS index file; exactly one per kind is active (what search serves)."""

    __tablename__ = "index_builds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checkpoint_hash: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    index_key: Mapped[str] = mapped_column(String(64))  # e.g. "Flat", "HNSW32", "IVF1024,Flat"
    n_vectors: Mapped[int] = mapped_column(Integer)
    study_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())


class CaseSet(Base):
    __tablename__ = "case_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())

    items: Mapped[list[CaseSetItem]] = relationship(
        back_populates="case_set", cascade="all, delete-orphan", order_by="CaseSetItem.position"
    )


class CaseSetItem(Base):
    __tablename__ = "case_set_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_set_id: Mapped[int] = mapped_column(ForeignKey("case_sets.id", ondelete="CASCADE"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text)

    case_set: Mapped[CaseSet] = relationship(back_populates="items")
    __table_args__ = (UniqueConstraint("case_set_id", "study_id", name="uq_case_set_study"),)


class Cohort(Base):
    """A saved cohort: enough to reproduce it (query, filters, threshold, checkpoint)."""

    __tablename__ = "cohorts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    query: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16), default="both")
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    threshold: Mapped[float] = mapped_column(Float)
    checkpoint_hash: Mapped[str] = mapped_column(String(64))
    study_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    owner: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now(), index=True)
    user: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))  # search | view_study | export | similar | cohort_save
    query: Mapped[str | None] = mapped_column(Text)
    filters: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    n_results: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


class IngestWatermark(Base):
    """Per-source high-water mark for incremental ingest (e.g. last StudyDate fetched from a PACS)."""

    __tablename__ = "ingest_watermarks"

    source_ref: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now(), onupdate=func.now())


Index("ix_series_study_view", Series.study_id, Series.view)


class IdentityLink(Base):
    """A pseudonym and the identity behind it, kept only where a site chooses to (``deid_keep_mapping``); read
    only through ``catalog.identity.reidentify``, which refuses every role but clinician."""

    __tablename__ = "identity_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # study | patient | accession
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    original: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (UniqueConstraint("kind", "pseudonym", name="uq_identity_link"),)
