"""Export files: case sets (CSV; ZIP of previews with one HTML page per case) and cohorts (CSV).

Every column and page goes through ``search.privacy``; file names use study numbers, never identifiers.
"""

from __future__ import annotations

import csv
import html
import io
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

from catalog.casesets import CaseSetEntry
from catalog.studies import StudyDetail
from search import privacy

PreviewFn = Callable[[StudyDetail], bytes | None]


def _csv(rows: Sequence[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def case_set_csv(cases: Sequence[tuple[CaseSetEntry, StudyDetail]], role: str) -> bytes:
    rows = [
        {"position": n + 1, **privacy.export_record(d, role), "note": e.note or "", "impression": d.impression or ""}
        for n, (e, d) in enumerate(cases)
    ]
    return _csv(rows)


def cohort_csv(hits: Sequence[Any], role: str) -> bytes:
    """One row per selected study, best score first."""
    return _csv([{**privacy.export_record(h, role), "score": round(float(h.score), 4)} for h in hits])


def _stem(position: int, detail: StudyDetail) -> str:
    return f"{position:03d}_study-{detail.study_id}"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #1c2833; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .2rem .8rem .2rem 0; text-align: left; vertical-align: top; }}
th {{ color: #566573; font-weight: 500; }}
.note {{ background: #fef9e7; padding: .6rem; border-left: 4px solid #f1c40f; }}
pre {{ white-space: pre-wrap; font-family: inherit; }} img {{ image-rendering: pixelated; max-width: 100%; }}
</style></head><body>
{body}
</body></html>
"""


def case_page(set_name: str, position: int, entry: CaseSetEntry, detail: StudyDetail, role: str,
              preview_name: str | None) -> str:
    """A one-page HTML summary of one case: preview, metadata, teaching note, report."""
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in privacy.metadata_rows(detail, role)
    )
    preview = (
        f'<img src="../previews/{preview_name}" alt="cine preview">' if preview_name else "<p><em>No cine "
        "preview: the study's clips are missing.</em></p>"
    )
    note = f'<p class="note">{html.escape(entry.note)}</p>' if entry.note else ""
    report = (
        f"<h2>Report</h2><pre>{html.escape(detail.report_text)}</pre>" if detail.report_text
        else "<p><em>No report on file.</em></p>"
    )
    title = f"{set_name} — case {position}"
    body = f"<h1>{html.escape(title)}</h1>{preview}{note}<table>{rows}</table>{report}"
    return _PAGE.format(title=html.escape(title), body=body)


def case_set_zip(set_name: str, cases: Sequence[tuple[CaseSetEntry, StudyDetail]], role: str,
                 preview: PreviewFn) -> bytes:
    """``index.html``, ``cases/NNN_study-ID.html`` and ``previews/NNN_study-ID.gif`` for each case, and the CSV."""
    buf = io.BytesIO()
    links = []
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, (entry, detail) in enumerate(cases, start=1):
            stem = _stem(n, detail)
            gif = preview(detail)
            if gif:
                zf.writestr(f"previews/{stem}.gif", gif)
            zf.writestr(f"cases/{stem}.html", case_page(set_name, n, entry, detail, role,
                                                          f"{stem}.gif" if gif else None))
            summary = html.escape(f"{privacy.study_number(detail)} · {privacy.age_sex_text(detail, role)} · "
                                  f"{(detail.impression or 'no report')[:120]}")
            links.append(f'<li><a href="cases/{stem}.html">{summary}</a></li>')
        zf.writestr("cases.csv", case_set_csv(cases, role))
        index = f"<h1>{html.escape(set_name)}</h1><ol>{''.join(links)}</ol>"
        zf.writestr("index.html", _PAGE.format(title=html.escape(set_name), body=index))
    return buf.getvalue()
