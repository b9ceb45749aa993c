"""The deploy files, read as data (CI has no Docker engine or cluster): images pinned, no secret
values committed, the S3 store's web pages unpublished, every long-running process checked for
health, and presigned URLs signed for a host researchers can reach."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared import config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))

PUBLIC_ENDPOINT = "GANFORGE_S3_PUBLIC_ENDPOINT_URL"
# Names whose values are secrets, or carry one (a database URL has its password) or go with one
# (an access key id): they come from env files and Secrets, never from committed YAML.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|DATABASE_URL|BROKER_URL")
# Names whose whole value is a secret.
SECRET_VALUE = re.compile(r"PASSWORD|SECRET|TOKEN")
# What an example file may hold in place of a secret.
PLACEHOLDER = re.compile(r"change-me")
# The S3 API port; everything else the store serves (master, volume and filer pages, admin UI,
# gRPC) lists or changes objects without a key.
S3_API_PORT = 8333


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]  # type: ignore[no-any-return]


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in K8S:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    if document["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
        return document["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return None


def containers() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, document in k8s_documents():
        spec = pod_spec(document)
        for container in (spec or {}).get("containers", []) + (spec or {}).get(
            "initContainers", []
        ):
            yield f"{path.name}:{container['name']}", document["kind"], container


def image_is_pinned(image: str) -> bool:
    """A version tag (not `latest`) or a digest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def env_file_values(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def test_the_files_parse() -> None:
    assert services()
    assert {document["kind"] for _, document in k8s_documents()} >= {"ConfigMap", "Deployment"}


# --- images ----------------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_version() -> None:
    images = {f"compose {name}": service["image"] for name, service in services().items()}
    images |= {f"k8s {where}": container["image"] for where, _, container in containers()}
    for dockerfile in DEPLOY.glob("Dockerfile.*"):
        if dockerfile.suffix == ".dockerignore":
            continue
        text = dockerfile.read_text()
        for image in re.findall(r"^ARG BASE_IMAGE=(\S+)", text, re.MULTILINE):
            images[f"{dockerfile.name} BASE_IMAGE"] = image
        for image in re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE):
            if not image.startswith("$"):
                images[f"{dockerfile.name} FROM"] = image
    unpinned = {where: image for where, image in images.items() if not image_is_pinned(image)}
    assert not unpinned, f"images without a version tag: {unpinned}"
    assert not any("minio/minio" in image or "minio/mc" in image for image in images.values()), (
        "MinIO no longer publishes images"
    )


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("chrislusf/seaweedfs:4.47", True),
        ("postgres:16", True),
        ("registry.example.org:5000/ganforge/api:0.1.0", True),
        ("minio/minio:latest", False),
        ("minio/minio", False),
        ("registry.example.org:5000/ganforge/api", False),
        ("redis@sha256:" + "0" * 64, True),
    ],
)
def test_what_counts_as_pinned(image: str, pinned: bool) -> None:
    assert image_is_pinned(image) is pinned


# --- secrets ---------------------------------------------------------------------------------


def test_compose_takes_secrets_from_env_files_that_git_ignores() -> None:
    ignored = set((DEPLOY / ".gitignore").read_text().split())
    for name, service in services().items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        written = [key for key in environment if SECRET_NAME.search(key)]
        assert not written, f"{name} sets {written} in the compose file; use an env_file"
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            assert env_file in ignored, f"{name}'s {env_file} is not in deploy/.gitignore"
            assert (DEPLOY / f"{env_file}.example").is_file(), f"no {env_file}.example"


def test_example_files_hold_placeholders_where_secrets_go() -> None:
    examples = [*DEPLOY.glob("*.env.example"), *DEPLOY.glob("k8s/*.env.example")]
    assert examples
    for example in examples:
        for key, value in env_file_values(example).items():
            secret = value if SECRET_VALUE.search(key) else urlsplit(value).password
            if secret:
                assert PLACEHOLDER.search(secret), f"{example.name}: {key} looks real: {value}"


def test_kubernetes_manifests_commit_no_secret_values() -> None:
    kinds = [document["kind"] for _, document in k8s_documents()]
    assert "Secret" not in kinds, "the Secret is made from secrets.env, not committed"
    for path, document in k8s_documents():
        if document["kind"] == "ConfigMap":
            leaked = [key for key in document["data"] if SECRET_NAME.search(key)]
            assert not leaked, f"{path.name}: {leaked} belong in the Secret"
    for where, _, container in containers():
        for variable in container.get("env", []):
            if SECRET_NAME.search(variable["name"]):
                assert "value" not in variable, f"{where}: {variable['name']} is written out"
        sources = {ref for item in container.get("envFrom", []) for ref in item}
        assert "secretRef" in sources, f"{where} reads no Secret"
    assert "k8s/secrets.env" in (DEPLOY / ".gitignore").read_text().split()


# --- the S3 store ----------------------------------------------------------------------------


def published_container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split(":")[-1].split("/")[0]))
    return ports


def test_the_s3_store_publishes_its_api_and_nothing_else() -> None:
    store = services()["s3"]
    assert published_container_ports(store) == {S3_API_PORT}
    assert "--console-address" not in str(store.get("command"))


def test_the_s3_store_runs_unprivileged_with_ganforge_limited_to_its_bucket() -> None:
    store = services()["s3"]
    assert store.get("user") not in ("root", "0", "0:0")
    script = " ".join(store["command"])
    # The image's entrypoint drops to its `seaweed` user before the server starts.
    assert "exec /entrypoint.sh server" in script
    assert '"Admin"' in script and "Read:%s" in script and "Write:%s" in script
    assert "s3.env" in store["env_file"] and "s3.env" not in str(services()["api"])


# --- health ----------------------------------------------------------------------------------


def test_every_long_running_compose_service_has_a_healthcheck() -> None:
    for name, service in services().items():
        if service.get("restart") == "no":
            continue  # one-shot jobs
        assert "healthcheck" in service, f"{name} has no healthcheck"
    assert services()["worker"]["healthcheck"]["test"][1:4] == ["ganforge", "health", "worker"]


def test_every_long_running_kubernetes_container_has_probes() -> None:
    for where, kind, container in containers():
        if kind == "Job":
            continue
        missing = {"readinessProbe", "livenessProbe"} - set(container)
        assert not missing, f"{where} lacks {missing}"


# --- presigned URLs --------------------------------------------------------------------------


def test_presigned_urls_are_signed_for_a_host_outside_the_cluster() -> None:
    assert f'"{PUBLIC_ENDPOINT}"' in Path(config.__file__).read_text(), "the setting's name"
    (configmap,) = [d for _, d in k8s_documents() if d["kind"] == "ConfigMap"]
    public = configmap["data"][PUBLIC_ENDPOINT]
    assert public.startswith("https://") and ".svc" not in public and "cluster.local" not in public
    example = env_file_values(DEPLOY / "ganforge.env.example")
    assert example[PUBLIC_ENDPOINT] and "//s3:" not in example[PUBLIC_ENDPOINT]
    assert example["GANFORGE_S3_ENDPOINT_URL"] == f"http://s3:{S3_API_PORT}"


# --- the namespace ---------------------------------------------------------------------------

KUBECTL = re.compile(r"kubectl [^`\n]*")
# Steps on cluster-scoped objects, which take no namespace.
CLUSTER_SCOPED = re.compile(r"00-namespace\.yaml|kubectl label node")


def test_the_kubectl_steps_use_the_namespace_the_manifests_create() -> None:
    (namespace,) = [d["metadata"]["name"] for _, d in k8s_documents() if d["kind"] == "Namespace"]
    assert K8S[0].name == "00-namespace.yaml", "`kubectl apply -f deploy/k8s/` creates it first"
    for path, document in k8s_documents():
        assert document["metadata"].get("namespace", namespace) == namespace, path.name
    readme = (DEPLOY / "README.md").read_text()
    texts = [readme, *(path.read_text() for path in DEPLOY.glob("k8s/*"))]
    steps = [step for text in texts for step in KUBECTL.findall(text)]
    assert steps
    for step in steps:
        if not CLUSTER_SCOPED.search(step):
            assert f"-n {namespace}" in step, f"`{step}` runs outside the namespace"
    creates = readme.index("kubectl apply -f deploy/k8s/00-namespace.yaml")
    assert creates < readme.index(f"kubectl create secret generic ganforge-secrets -n {namespace}")


# --- the GPU workers -------------------------------------------------------------------------

GPU = "nvidia.com/gpu"
# What a worker pod may reserve beside its GPUs: a floor every GPU node has to spare, not a size.
MODEST_CPUS = 8
MODEST_MEMORY_GIB = 32


def quantity(value: str | int) -> float:
    """A Kubernetes quantity as a number: CPUs for `500m`/`4`, GiB for `16Gi`/`512Mi`."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**-20, "Mi": 2**-10, "Gi": 1.0, "Ti": 2**10}
    for suffix, scale in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * scale
    return float(text)


def worker_daemonsets() -> list[dict[str, Any]]:
    workers = [
        d
        for _, d in k8s_documents()
        if d["kind"] == "DaemonSet"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]
    assert workers
    return workers


def selected_gpu_count(daemonset: dict[str, Any]) -> int:
    """The `nvidia.com/gpu.count` the DaemonSet's node affinity requires, every term alike; the
    terms must also require `nvidia.com/gpu.present=true`."""
    affinity = daemonset["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    counts = set()
    for term in terms:
        required = {e["key"]: (e["operator"], e["values"]) for e in term["matchExpressions"]}
        assert required[f"{GPU}.present"] == ("In", ["true"]), "a term lets in non-GPU nodes"
        operator, values = required[f"{GPU}.count"]
        assert operator == "In" and len(values) == 1, "one GPU count per DaemonSet"
        counts.add(int(values[0]))
    (count,) = counts
    return count


def test_workers_run_only_on_gpu_nodes_that_have_the_gpus_they_ask_for() -> None:
    counts = []
    for daemonset in worker_daemonsets():
        name = daemonset["metadata"]["name"]
        pod = daemonset["spec"]["template"]["spec"]
        count = selected_gpu_count(daemonset)
        counts.append(count)
        assert any(t["key"] == GPU and t["effect"] == "NoSchedule" for t in pod["tolerations"])
        (container,) = pod["containers"]
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        assert int(requests[GPU]) == int(limits[GPU]) == count, f"{name} asks for other GPUs"
        assert quantity(requests["cpu"]) <= MODEST_CPUS, f"{name}: a CPU request nodes may lack"
        assert quantity(requests["memory"]) <= MODEST_MEMORY_GIB, f"{name}: memory likewise"
        selector = daemonset["spec"]["selector"]["matchLabels"]
        assert "ganforge.io/pool" in selector, f"{name}'s pods would be another pool's too"
        assert selector.items() <= daemonset["spec"]["template"]["metadata"]["labels"].items()
        env = {v["name"]: v.get("value") for v in container["env"]}
        # Unset, each one-GPU job's rank would take every core of the node.
        assert config.Settings.from_env(env).torch_threads is not None, name
    assert len(counts) == len(set(counts)), "two worker DaemonSets select the same nodes"


@pytest.mark.parametrize(("value", "amount"), [("500m", 0.5), ("4", 4.0), ("16Gi", 16.0)])
def test_quantities_are_read_in_cpus_and_gib(value: str, amount: float) -> None:
    assert quantity(value) == amount


# --- compose: each container its own variables ------------------------------------------------


def env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file") or []
    return [files] if isinstance(files, str) else list(files)


def compose_environment(name: str) -> dict[str, str]:
    """What compose hands service `name`, with the example files standing in for the real
    ones: its env files in order, then its own `environment:` (which wins)."""
    service = services()[name]
    env: dict[str, str] = {}
    for env_file in env_files(service):
        env |= env_file_values(DEPLOY / f"{env_file}.example")
    return env | {key: str(value) for key, value in (service.get("environment") or {}).items()}


def test_the_database_container_gets_its_own_variables_and_no_others() -> None:
    assert env_files(services()["postgres"]) == ["postgres.env"]
    received = compose_environment("postgres")
    assert received and all(key.startswith("POSTGRES_") for key in received), received
    readers = [name for name, service in services().items() if "postgres.env" in env_files(service)]
    assert readers == ["postgres"]
    assert not any(
        key.startswith("POSTGRES_") for key in env_file_values(DEPLOY / "ganforge.env.example")
    )
    # The ganforge URL names the user, password and database that container creates.
    url = urlsplit(compose_environment("migrate")["GANFORGE_DATABASE_URL"])
    assert (url.username, url.password, url.path.lstrip("/")) == (
        received["POSTGRES_USER"],
        received["POSTGRES_PASSWORD"],
        received["POSTGRES_DB"],
    )


def test_the_compose_worker_caps_torch_threads_per_rank() -> None:
    """Unset, each one-GPU job's rank (and each GPU's warm sampler) takes every core."""
    settings = config.Settings.from_env(compose_environment("worker"))
    assert settings.torch_threads is not None
