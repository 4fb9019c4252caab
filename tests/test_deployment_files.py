"""docker-compose.yml and the Dockerfile, checked by their own tools (no Docker
engine needed): docker-compose config and hadolint."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
HADOLINT = Path(sys.executable).parent / "hadolint"


def compose_config(path, *extra):
    return subprocess.run([COMPOSE, "-f", str(path), *extra, "config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("profile", [(), ("--profile", "prometheus")])
@pytest.mark.slow
def test_compose_file_is_valid(profile):
    out = compose_config(ROOT / "docker-compose.yml", *profile)
    assert out.returncode == 0, out.stderr
    assert "sensor-service" in out.stdout
    if profile:
        assert "prometheus:" in out.stdout


@pytest.mark.slow
def test_malformed_compose_file_is_rejected(tmp_path):
    text = (ROOT / "docker-compose.yml").read_text()
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(text.replace("    mem_limit: 50m", "    mem_limit: [50m", 1))
    out = compose_config(bad)
    assert out.returncode != 0
    assert out.stderr.strip()


@pytest.mark.slow
def test_compose_with_unknown_field_is_rejected(tmp_path):
    text = (ROOT / "docker-compose.yml").read_text()
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(text.replace("    cpus: 0.5", "    cpus: 0.5\n    cpu_limitz: 1", 1))
    assert compose_config(bad).returncode != 0


@pytest.mark.slow
def test_dockerfile_passes_hadolint():
    out = subprocess.run([str(HADOLINT), "Dockerfile"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_runs_the_service_as_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text
    assert "/healthz" in text and "HEALTHCHECK" in text
    health = text[text.index("HEALTHCHECK"):].split("\n", 2)[1]
    assert '"wget"' in health and "python" not in health   # busybox, not a second interpreter
    assert "COPY --chown=root:root plumbing/ ./plumbing/" in text   # ConfigError's base class
    assert 'CMD ["python", "-m", "service"]' in text
    assert "ENV SENSOR_VARIANT=$SENSOR_VARIANT" in text
