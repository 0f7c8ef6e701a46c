"""The PHI-leak test: for the researcher role, no identifier of the phantom archive reaches any surface.

A small phantom archive is ingested with ``cmr ingest`` and indexed with an untrained tiny model. Then, once per
role, every UI page is rendered (AppTest), every CLI command that shows studies prints its table and its JSON,
every export (case set CSV and ZIP, cohort CSV) is built as the pages build it, and the logs are kept at DEBUG.
And once per role the app runs as ``cmr ui`` runs it and Chromium renders the pages (search results, similar
cases, every study page, a case set, the cohort, status) and downloads the exports as a user does; the page
HTML, its visible text, its URL and the downloaded files are scanned.
All of it is searched for every identifier the archive's DICOM headers and report headers hold: patient names,
patient IDs, accession numbers, study UIDs, birth dates and exact study dates, in the spellings reports use.

The researcher must see none of them; the clinician must see them on every surface, so the scan cannot pass
because nothing was rendered.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.ui.conftest import APP, assert_clean, rendered_text
from tests.ui.live import CHROMIUM, CHROMIUM_ARGS, require_chromium, serve

TINY = {"embed_dim": 32, "video": {"width": 32, "cnn": {"channels": [8, 16, 32]}, "fusion": {"heads": 2}}}
QUERY = "dilated left ventricle"


def _date_forms(value: str) -> set[str]:
    """A DICOM date (YYYYMMDD) in the spellings reports and pages use."""
    day = dt.datetime.strptime(value, "%Y%m%d").date()
    return {value, day.isoformat(), day.strftime("%d.%m.%Y"), day.strftime("%d/%m/%Y")}


def _identifiers(archive: Path) -> set[str]:
    """Every identifier in the archive's DICOM headers and its report export's headers."""
    import pydicom

    found: set[str] = set()
    for path in sorted((archive / "dicom").rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            continue
        name = str(ds.get("PatientName", "") or "")
        parts = [p for p in re.split(r"[\^ ]+", name) if len(p) >= 3]
        found |= set(parts) | {p.title() for p in parts}
        for keyword in ("PatientID", "AccessionNumber", "StudyInstanceUID"):
            value = str(ds.get(keyword, "") or "")
            if value:
                found.add(value)
        for keyword in ("PatientBirthDate", "StudyDate"):
            value = str(ds.get(keyword, "") or "")
            if re.fullmatch(r"\d{8}", value):
                found |= _date_forms(value)
    with (archive / "reports.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            found.add(row["accession"])
            header = row["report_text"].splitlines()[0]  # "Patient: NGUYEN, Luca  MRN: … Acc: … Date: …"
            found |= {d for d in re.findall(r"\d{4}-\d\d-\d\d|\d\d[./]\d\d[./]\d{4}", header)}
    return {f for f in found if f}


def _hits(text: str, identifiers: set[str]) -> set[str]:
    return {i for i in identifiers if re.search(rf"(?<![\w]){re.escape(i)}(?![\w])", text)}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A 4-study phantom archive (plus one unreadable file in a patient folder), ingested and indexed."""
    import os

    import torch

    from catalog.settings import get_settings
    from cmr.cli import app
    from cmrclip.checkpoint import save_checkpoint
    from cmrclip.factory import create_model
    from indexer.clips.preprocess import PREPROCESS_VERSION
    from indexer.index.job import run_index
    from phantom.archive import synthesize

    root = tmp_path_factory.mktemp("phi")
    archive = root / "archive"
    synthesize(archive, 4, seed=3, fault_rate=0.0, progress=False, workers=1)
    study_dir = next(p.parent for p in sorted((archive / "dicom").rglob("*")) if p.is_file())
    (study_dir.parent / "notes.dcm").write_bytes(b"not a DICOM file")  # an error whose path names the patient
    data = root / "data"
    data.mkdir()
    env = {"CMR_DATA_DIR": str(data), "CMR_DATABASE_URL": f"sqlite:///{data / 'catalog.sqlite'}",
           "CMR_CHECKPOINT": "", "CMR_WORKERS": "1", "CMR_ROLE": "clinician"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["ingest", str(archive / "dicom"), "--reports", str(archive / "reports.csv")])
        assert result.exit_code == 0, result.output
        torch.manual_seed(0)
        checkpoint = data / "checkpoints" / "tiny.pt"
        save_checkpoint(create_model("cpu-small", pretrained_text=False, **TINY).eval(), checkpoint,
                        PREPROCESS_VERSION)
        (checkpoint.parent / "ACTIVE").write_text(str(checkpoint))
        run_index(get_settings().resolved_database_url(), checkpoint, data / "index", batch_size=8, device="cpu",
                  workers=0, progress=False)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    yield {"archive": archive, "env": env, "identifiers": _identifiers(archive)}


def _surfaces(role: str, env: dict, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Everything each surface shows to ``role``, as text, by surface name."""
    from streamlit.testing.v1 import AppTest

    from catalog import casesets
    from catalog import studies as catalog_studies
    from catalog.db import session_scope
    from catalog.settings import get_settings
    from cmr import common
    from cmr.cli import app
    from search import privacy
    from search.previews import card_preview
    from ui import exports

    for name, value in {**env, "CMR_ROLE": role, "CMR_USER": f"phi-{role}"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    monkeypatch.setattr(common.console, "width", 400)  # no wrapped cells: an identifier stays on one line
    with session_scope() as session:
        ids = [s.id for s in catalog_studies.list_studies(session)]
        uids = [s.study_uid for s in catalog_studies.list_studies(session)]
        set_id = casesets.create(session, f"PHI scan ({role})")
        for sid in ids:
            casesets.add_study(session, set_id, sid, "teaching note")
        details = [privacy.for_role(d, role) for d in catalog_studies.study_details(session, ids)]
        entries = casesets.entries(session, set_id)

    def page(name: str, **params: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page(f"app_pages/{name}.py")
        return at.run()

    out: dict[str, str] = {}
    pages = {"search": page("search", q=QUERY), "similar": page("search", similar=str(ids[0])),
             "by example": page("search", like=str(ids[0])), "qa": page("qa"), "status": page("status")}
    pages |= {f"study {sid}": page("study", study=str(sid)) for sid in ids}
    sets = page("case_sets")
    pages["case sets"] = sets.sidebar.radio(key="cs_selected").set_value(set_id).run()
    cohort = page("cohort")
    cohort.text_input(key="c_query").input(QUERY)
    cohort.button(key="FormSubmitter:cohort_form-Score studies").click()
    pages["cohort"] = cohort.run()
    for name, at in pages.items():
        assert_clean(at)
        out[f"page {name}"] = rendered_text(at)

    runner = CliRunner()
    commands = {"search": ["search", QUERY], "search json": ["search", QUERY, "--json"],
                "similar": ["search", "--similar", uids[0]], "similar json": ["search", "--similar", uids[0], "--json"],
                "by example": ["search", "--like", str(ids[0]), QUERY],
                "by example json": ["search", "--like", str(ids[0]), "--json"],
                "qa": ["qa", "-k", "50"], "qa json": ["qa", "-k", "50", "--json"],
                "studies": ["studies"], "studies json": ["studies", "--json"],
                "errors": ["errors"], "errors json": ["errors", "--json"]}
    for name, args in commands.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (name, result.output)
        out[f"cli {name}"] = result.output

    cases = [(e, d) for e, d in zip(entries, details, strict=True)]
    preview_dir = get_settings().preview_dir
    out["export case set csv"] = exports.case_set_csv(cases, role).decode()
    with zipfile.ZipFile(io.BytesIO(exports.case_set_zip(
            "PHI", cases, role, lambda d: card_preview(d.clip_path, d.study_uid, preview_dir)))) as zf:
        out["export case set zip"] = "\n".join(f"{n}\n{zf.read(n).decode(errors='replace')}" for n in zf.namelist())
    from search.engine import Engine

    hits = [privacy.for_role(h, role) for h in Engine.open(get_settings()).scores_for(QUERY, mode="video")]
    out["export cohort csv"] = exports.cohort_csv(hits, role).decode()
    get_settings.cache_clear()
    return out


def test_researcher_sees_no_identifier_anywhere_and_clinician_sees_them(phantom, monkeypatch, caplog):
    identifiers = phantom["identifiers"]
    assert len(identifiers) > 20, identifiers
    caplog.set_level(logging.DEBUG)

    researcher = _surfaces("researcher", phantom["env"], monkeypatch)
    leaks = {name: sorted(_hits(text, identifiers)) for name, text in researcher.items()}
    assert not {k: v for k, v in leaks.items() if v}, "identifiers shown to a researcher"
    assert not _hits(caplog.text, identifiers), "identifiers in the log"

    clinician = _surfaces("clinician", phantom["env"], monkeypatch)
    seen = {name: _hits(text, identifiers) for name, text in clinician.items()}
    blind = [name for name, found in seen.items()
             if not found and name not in ("page status", "page cohort", "cli errors", "cli errors json")
             and not (name.endswith((" qa", " qa json")) and not _qa_listed(clinician[name]))]
    assert not blind, f"the clinician sees no identifier on {blind}: the scan would pass vacuously"
    assert _hits(clinician["cli errors json"], identifiers), "error paths name the patient's folder"


def _qa_listed(text: str) -> bool:
    """Whether a QA surface lists any study (an untrained model may find no disagreement to list)."""
    return "confidence" in text and "images disagree with its report beyond" not in text


def _browser_surfaces(role: str, env: dict, log_path: Path) -> dict[str, str]:
    """What Chromium receives for ``role`` from a live ``cmr ui``: each page's HTML, visible text and URL, and the
    files its export buttons download, by surface name."""
    from urllib.parse import quote_plus

    from playwright.sync_api import sync_playwright

    from catalog import casesets
    from catalog import studies as catalog_studies
    from catalog.db import get_engine, session_scope

    url = env["CMR_DATABASE_URL"]
    with session_scope(url) as session:
        ids = [s.id for s in catalog_studies.list_studies(session)]
        set_name = f"PHI browser {role}"
        set_id = casesets.create(session, set_name)
        for sid in ids:
            casesets.add_study(session, set_id, sid, "browser note")
    get_engine.cache_clear()

    out: dict[str, str] = {}
    with serve({**env, "CMR_ROLE": role, "CMR_USER": f"phi-browser-{role}"}, log_path) as (base, _), \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
        page.set_default_timeout(90_000)

        def grab(name: str) -> None:
            # the run is over when Streamlit's running indicator is gone and the page has not changed for a second
            # (the indicator shows only after a delay, so on busy cores it alone can let a half-drawn page through)
            html, deadline = None, time.monotonic() + 60
            while time.monotonic() < deadline:
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
                now = page.content()
                if now == html:
                    break
                html = now
                page.wait_for_timeout(1000)
            errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
            assert not errors.count(), (name, errors.first.inner_text())
            out[f"browser {name}"] = "\n".join((page.content(), page.inner_text("body"), page.url))

        def download(name: str, kind: str) -> None:
            page.get_by_role("button", name=f"Export {kind}").click()
            button = page.get_by_role("button", name=f"Download {kind}")
            button.first.wait_for()
            page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")  # the rerun is over
            with page.expect_download() as info:
                button.click()
            data = Path(info.value.path()).read_bytes()
            if kind == "ZIP":
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    text = "\n".join(f"{n}\n{zf.read(n).decode(errors='replace')}" for n in zf.namelist())
            else:
                text = data.decode()
            out[f"browser download {name}"] = text

        try:
            page.goto(f"{base}/?q={quote_plus(QUERY)}")
            page.get_by_text(re.compile(r"^\d+ studies, best match first")).first.wait_for()
            grab("search")
            page.goto(f"{base}/?similar={ids[0]}")
            page.get_by_text(re.compile(r"^\d+ studies, best match first")).first.wait_for()
            grab("similar")
            page.goto(f"{base}/?like={ids[0]}&like={ids[1]}")
            page.get_by_text(re.compile(r"^\d+ studies, best match first")).first.wait_for()
            grab("by example")
            page.goto(f"{base}/qa")
            page.get_by_role("heading", name="Report QA", exact=True).first.wait_for()
            grab("qa")
            for sid in ids:
                page.goto(f"{base}/study?study={sid}")
                page.get_by_role("heading", name="Nearest neighbours", exact=True).first.wait_for()
                page.get_by_text(re.compile(r"^\d+ × \d+ pixels")).first.wait_for()  # the native cines
                grab(f"study {sid}")
            if role == "clinician":  # the README's picture of the Study page: native cines, the model's crop drawn
                page.goto(f"{base}/study?study={ids[0]}")
                page.get_by_text(re.compile(r"^\d+ × \d+ pixels")).first.wait_for()
                page.get_by_text("Show the model's crop").click()
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
                page.wait_for_timeout(1500)
                page.screenshot(path=str(log_path.parent / "study_native.png"), full_page=True)
            page.goto(f"{base}/case_sets")
            page.locator('[data-testid="stSidebar"]').get_by_text(re.compile(rf"^{set_name} · \d+$")).click()
            page.get_by_role("heading", name=set_name, exact=True).first.wait_for()
            grab("case sets")
            download("case set csv", "CSV")
            download("case set zip", "ZIP")
            page.goto(f"{base}/cohort")
            page.get_by_label("Findings that define the cohort").fill(QUERY)
            page.get_by_role("button", name="Score studies").click()
            page.get_by_text("Studies in cohort").first.wait_for()
            grab("cohort")
            download("cohort csv", "CSV")
            page.goto(f"{base}/status")
            page.get_by_role("heading", name="Model and index", exact=True).first.wait_for()
            grab("status")
        finally:
            browser.close()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    return out


def test_researcher_sees_no_identifier_in_the_browser_and_clinician_does(phantom, tmp_path):
    require_chromium()
    identifiers = phantom["identifiers"]

    with ThreadPoolExecutor(2) as pool:  # one server and one Chromium per role, side by side
        researcher, clinician = pool.map(
            lambda role: _browser_surfaces(role, phantom["env"], tmp_path / f"{role}.log"), ("researcher", "clinician"))
    leaks = {name: sorted(_hits(text, identifiers)) for name, text in researcher.items()}
    assert not {k: v for k, v in leaks.items() if v}, "identifiers shown to a researcher in the browser"

    assert clinician.keys() == researcher.keys()
    # the cohort table is drawn on a canvas (its cells are not in the HTML); the status page names no study
    blind = [name for name, text in clinician.items()
             if not _hits(text, identifiers) and name not in ("browser cohort", "browser status")
             and not (name == "browser qa" and not _qa_listed(text))]
    assert not blind, f"the clinician sees no identifier on {blind}: the scan would pass vacuously"
