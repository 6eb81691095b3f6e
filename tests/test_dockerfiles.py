"""Static checks of orch's Dockerfiles (no Docker engine runs here)."""
from __future__ import annotations

import pathlib
import re
import shlex
import subprocess

import pytest

from orchestrator.backends.azure.launch_commands import SSHD_START_SCRIPT
from orchestrator.launch.plans import SSHD_PORT

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCKERFILES = [ROOT / "docker" / "Dockerfile.gpu", ROOT / "docker" / "Dockerfile.cpu"]
ENTRYPOINT = ROOT / "docker" / "entrypoint-sshd.sh"
SECRET_PATTERNS = [
    r"AccountKey=", r"SharedAccessSignature", r"[?&]sig=", r"BEGIN [A-Z ]*PRIVATE KEY",
    r"(?i)password\s*=", r"(?i)(secret|token|api_key)\s*=\s*\S", r"ghp_[A-Za-z0-9]{20,}",
]


def instructions(path: pathlib.Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, with continuation lines joined and comments dropped."""
    joined, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, f"{path.name} ends inside a continuation"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in joined]


def args_of(path: pathlib.Path) -> dict[str, str]:
    values = {}
    for keyword, rest in instructions(path):
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            values[name] = value
    return values


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned_tags(dockerfile) -> None:
    froms = [rest.split()[0] for keyword, rest in instructions(dockerfile) if keyword == "FROM"]
    assert froms
    for image in froms:
        name, _, tag = image.rpartition(":")
        assert name and tag and "/" not in tag, f"{image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{image} is not pinned"
    assert "latest" not in dockerfile.read_text()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_horovod_comes_from_the_build_script(dockerfile) -> None:
    steps = instructions(dockerfile)
    copies = [rest for keyword, rest in steps if keyword == "COPY"]
    assert any(rest.split()[0] == "scripts/build_horovod.sh" for rest in copies)
    runs = [rest for keyword, rest in steps if keyword == "RUN" and "build_horovod.sh" in rest]
    assert len(runs) == 1
    assert ("--gpu" in runs[0]) == dockerfile.name.endswith(".gpu")
    assert 'torch==${TORCH_VERSION}' in dockerfile.read_text()
    assert args_of(dockerfile)["TORCH_VERSION"] == "2.13.0"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_sshd_port_and_script_match_the_launch_code(dockerfile) -> None:
    steps = instructions(dockerfile)
    assert args_of(dockerfile)["ORCH_SSHD_PORT"] == str(SSHD_PORT)
    assert ("EXPOSE", "${ORCH_SSHD_PORT}") in steps
    copies = [rest.split() for keyword, rest in steps if keyword == "COPY"]
    assert ["docker/entrypoint-sshd.sh", SSHD_START_SCRIPT] in copies
    assert any(keyword == "RUN" and "openssh-server" in rest for keyword, rest in steps)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_and_nothing_secret_is_baked_in(dockerfile) -> None:
    for keyword, rest in instructions(dockerfile):
        if keyword in ("COPY", "ADD"):
            words = [word for word in shlex.split(rest) if not word.startswith("--")]
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY source {source} missing"
    text = dockerfile.read_text()
    for pattern in SECRET_PATTERNS:
        assert not re.search(pattern, text), f"{dockerfile.name} matches {pattern}"


def test_entrypoint_defaults_to_the_launch_port_and_parses() -> None:
    text = ENTRYPOINT.read_text()
    assert re.search(rf"^port={SSHD_PORT}$", text, re.MULTILINE)
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)], timeout=30).returncode == 0
    assert not any(re.search(pattern, text) for pattern in SECRET_PATTERNS)
