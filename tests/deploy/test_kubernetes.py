"""deploy/kubernetes/: valid against the Kubernetes API's own schemas (kubernetes-validate,
strict: an unknown field is an error), references that meet (labels, names, ports, files),
timings that let the drain finish, and the ConfigMap's config.yaml accepted by the gateway's
own loader with the Secrets' files where the projected volume puts them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import load
from gateway.config.hashes import hash_opaque

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
# The oldest Kubernetes still maintained upstream when written, and the newest bundled.
VERSIONS = ("1.32.0", kubernetes_validate.latest_version())
MEASURED_MIB_UNDER_LOAD = 105  # docs/operations.md: the soak's median RSS per worker


def _resources() -> dict[str, dict[str, Any]]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((MANIFESTS / name).read_text()):
            found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def resources() -> dict[str, dict[str, Any]]:
    return _resources()


def _container(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_strictly(resources: dict[str, dict[str, Any]],
                                          version: str) -> None:
    assert set(resources) == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    for document in resources.values():
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_refuses_a_misspelt_field(resources: dict[str, dict[str, Any]]
                                                    ) -> None:
    deployment = yaml.safe_load(yaml.safe_dump(resources["Deployment"]))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_references_meet(resources: dict[str, dict[str, Any]]) -> None:
    deployment = resources["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (deployment["spec"]["selector"]["matchLabels"],
                     resources["Service"]["spec"]["selector"],
                     resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    container = _container(resources)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert [p["targetPort"] for p in resources["Service"]["spec"]["ports"]] == ["https"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "admin"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    config = yaml.safe_load(resources["ConfigMap"]["data"]["config.yaml"])
    assert (ports["https"], ports["admin"]) == (config["server"]["port"],
                                                config["server"]["admin"]["port"])
    # The image's default command reads /etc/gateway/config.yaml: the projected volume.
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["etc"]["mountPath"] == "/etc/gateway" and mounts["etc"]["readOnly"]
    assert mounts["state"]["mountPath"] == "/var/lib/gateway"
    assert "command" not in container and "args" not in container
    (etc,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"]
              if v["name"] == "etc"]
    sources = etc["projected"]["sources"]
    assert sources[0]["configMap"]["name"] == resources["ConfigMap"]["metadata"]["name"]
    # Every ${VAR} the configuration names is set by the Deployment.
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)",
                           resources["ConfigMap"]["data"]["config.yaml"]))
    assert names == {e["name"] for e in container["env"]}


def test_the_drain_fits_the_grace_period_and_the_pod_is_locked_down(
        resources: dict[str, dict[str, Any]]) -> None:
    spec = resources["Deployment"]["spec"]["template"]["spec"]
    container = _container(resources)
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    # preStop, then SIGTERM: 35 s at most for the supervisor's drain.
    assert spec["terminationGracePeriodSeconds"] >= int(command[1]) + 35
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    request = container["resources"]["requests"]["memory"]
    assert request.endswith("Mi") and int(request[:-2]) >= MEASURED_MIB_UNDER_LOAD
    assert resources["PodDisruptionBudget"]["spec"]["minAvailable"] < \
        resources["Deployment"]["spec"]["replicas"]


def test_the_configmap_loads_with_the_secrets_where_the_volume_puts_them(
        resources: dict[str, dict[str, Any]], tmp_path: Path, cert_dir: Path,
        signing_keys: dict[str, Path]) -> None:
    etc = tmp_path / "etc"
    container = _container(resources)
    (volume,) = [v for v in resources["Deployment"]["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == "etc"]
    files = {"config.yaml": resources["ConfigMap"]["data"]["config.yaml"].encode(),
             "tls.crt": (cert_dir / "server.crt").read_bytes(),
             "tls.key": (cert_dir / "server.key").read_bytes(),
             "jwt-k1.pem": signing_keys["ES256"].read_bytes()}
    for source in volume["projected"]["sources"]:
        for item in next(iter(source.values()))["items"]:
            target = etc / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[item["key"]])
    env = {e["name"]: e.get("value", "set-by-a-secret") for e in container["env"]}
    env.update(REDIS_URL="redis://redis:6379/0", AAM_CREDENTIAL_HASH=hash_opaque("x" * 40),
               GATEWAY_STATE_DIR="/var/lib/gateway")  # the image's
    settings = load(etc / "config.yaml", env)
    assert settings.warnings == ()
    assert (settings.state.backend, settings.spool.backend) == ("redis", "redis")
    assert settings.server.pid_file == Path("/var/lib/gateway/var/gateway.pid")
    assert settings.spool.path == Path("/var/lib/gateway/var/spool.db")
    assert settings.server.tls.cert_file == etc / "tls" / "tls.crt"
