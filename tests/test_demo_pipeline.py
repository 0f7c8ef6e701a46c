"""The README's demo, run exactly as ``make demo`` runs it, with its search results checked against ground truth.

The commands come from ``make -n demo`` (the Makefile is the one place the demo recipe is written: seed 1, 3 %
faults, one site held out of training), each run as its own process, up to the search; ``cmr ui`` is left out. To
keep CI short the recipe runs smaller through the Makefile's own variables: 120 studies and 8 epochs instead of 240
and 30 (``CMR_DEMO_FULL=1`` runs the full size; its numbers are in the README). The search is then repeated with
``--json`` and checked against the phantom's ground_truth.csv, which is read here only. About 3 minutes on 2 cores
(the full size: about 8).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUERY = "dilated left ventricle with poor function"


SIZE = [] if os.environ.get("CMR_DEMO_FULL") == "1" else ["DEMO_STUDIES=120", "DEMO_EPOCHS=8"]


def _demo_commands(demo_dir: Path) -> list[str]:
    """The shell lines ``make demo`` would run for ``demo_dir``, from synth to search (not the venv, not the UI)."""
    plan = subprocess.run(["make", "-n", "--no-print-directory", "demo", f"DEMO_DIR={demo_dir}", *SIZE], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    commands = [line for line in plan.splitlines() if "bin/cmr " in line and "bin/cmr ui" not in line]
    assert [re.search(r"bin/cmr (\w+)", c)[1] for c in commands] == ["synth", "ingest", "train", "index", "search"]
    return commands


def _run(command: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"{command}\nfailed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[str, dict[str, str], dict[str, dict[str, str]]]:
    demo_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}  # the demo's settings only
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    commands = _demo_commands(demo_dir)
    for command in commands[:-1]:
        _run(command, env)
    table = _run(commands[-1], env)
    assert "dilated" in table.lower()  # the readable table the demo prints
    with (demo_dir / "ground_truth.csv").open(newline="") as fh:
        truth = {row["study_uid"]: row for row in csv.DictReader(fh)}
    return commands[-1], env, truth


def _search(demo: tuple[str, dict[str, str], dict[str, dict[str, str]]], query: str) -> list[dict[str, str]]:
    command, env, truth = demo
    assert f'"{QUERY}"' in command
    hits = json.loads(_run(command.replace(f'"{QUERY}"', f'"{query}"') + " --json", env))
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    return [truth[h["study_uid"]] for h in hits]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_demo_query_returns_dilated_poorly_contracting_ventricles(demo):
    """The demo's query asks for two findings (whatever the diagnosis: DCM, myocarditis, a large infarct)."""
    from cmrclip.train.ground_truth import has_finding

    hits = _search(demo, QUERY)
    wanted = [has_finding(t, "lv_dilation") and has_finding(t, "lv_systolic_dysfunction") for t in hits]
    assert wanted[0] and sum(wanted) >= 4, [t["conditions"] for t in hits]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_demo_diagnosis_query(demo):
    conditions = [t["conditions"] for t in _search(demo, "dilated cardiomyopathy")]
    assert "dilated_cardiomyopathy" in conditions[0], conditions
    assert sum("dilated_cardiomyopathy" in c for c in conditions) >= 4, conditions
