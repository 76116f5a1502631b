"""The deployment files: the compose file against the Compose Specification's JSON schema,
the Kubernetes manifests against the Kubernetes API's schemas (strict: no unknown field),
the systemd unit through systemd-analyze, and what each must say about health, users and
read-only roots."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import check_jsonschema.builtin_schemas
import jsonschema
import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = "1.31.0"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _manifests() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def _compose_errors(compose: dict[str, Any]) -> list[str]:
    """What the Compose Specification's schema (as check-jsonschema ships it) finds wrong."""
    folder = Path(check_jsonschema.builtin_schemas.__file__).parent
    schema = json.loads((folder / "vendor" / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert _compose_errors(_compose()) == []


def test_the_compose_stack_runs_two_read_only_replicas_on_postgresql_with_a_smarthost() -> None:
    services = _compose()["services"]
    gateways = {name: s for name, s in services.items() if name.startswith("gateway-")}
    assert len(gateways) == 2
    assert {"postgres", "smarthost", "migrate"} <= set(services)
    for service in gateways.values():
        assert service["read_only"] is True
        assert service["healthcheck"]["test"] == ["CMD", "bsm-gateway", "check", "--ready"]
        assert "./tls:/run/tls:ro" in service["volumes"]
        assert service["environment"]["BSM_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert service["environment"]["BSM_DELIVERY__TRANSPORT"] == "smtp://smarthost:25"
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == ["db", "upgrade"]


@pytest.mark.parametrize(
    "manifest", _manifests(), ids=lambda m: f"{m['kind']}/{m['metadata']['name']}"
)
def test_each_kubernetes_manifest_is_valid(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def test_a_misspelt_field_fails_the_validation() -> None:
    deployment = next(m for m in _manifests() if m["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    pod["containers"][0]["readinessprobe"] = pod["containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    compose = _compose()
    compose["services"]["gateway-1"]["healthcheck"]["intervall"] = "15s"
    assert _compose_errors(compose)


def test_the_deployment_probes_health_and_readiness_and_runs_read_only_as_non_root() -> None:
    by_kind = {m["kind"]: m for m in _manifests()}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret", "Job"} <= set(
        by_kind
    )
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/run/tls"]["readOnly"] is True
    assert "/var/lib/bsm-gateway" in mounts
    assert by_kind["Deployment"]["spec"]["replicas"] >= 2
    assert by_kind["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    assert by_kind["Service"]["spec"]["externalTrafficPolicy"] == "Local"


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze (Debian's systemd) is needed"
    unit = (DEPLOY / "bsm-gateway.service").read_text()
    assert "ExecStart=/opt/bsm-gateway/bin/bsm-gateway serve" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # systemd-analyze checks that the programs exist: this checkout's stand in for /opt's.
    installed = str(Path(sys.executable).parent / "bsm-gateway")
    local = tmp_path / "bsm-gateway.service"
    local.write_text(unit.replace("/opt/bsm-gateway/bin/bsm-gateway", installed))
    result = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
