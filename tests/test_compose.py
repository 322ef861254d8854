"""The shape of the container deployment (docker-compose.yml and its image recipe).

No Docker engine runs on the development machine, so `docker compose up` cannot be exercised
here. These tests read docker-compose.yml, the Dockerfile and the scripts beside it, and
check what would otherwise only fail on a server: Kafka in KRaft mode, one database per
component, every component built, health-checked, migrated before start, wired to Kafka,
PostgreSQL and the gateway's JWKS, and no secret written into the file.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"

# name: (folder, package, port, database)
COMPONENTS = {
    "gateway": ("gateway", "gateway", 8000, "gateway"),
    "registry": ("services/registry", "registry", 8001, "registry"),
    "disbursement": ("services/disbursement", "disbursement", 8002, "disbursement"),
    "shelter": ("services/shelter", "shelter", 8003, "shelter"),
    "homeless-return": ("services/homeless-return", "homeless_return", 8004, "homeless_return"),
    "disaster": ("services/disaster", "disaster", 8005, "disaster"),
}
SECRET_ENV = ("PILAR_NIK_HASH_KEY", "PILAR_PII_KEY")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key written twice in one mapping (compose rejects it too)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE.is_file(), "docker-compose.yml is missing at the repository root"
    data = yaml.load(COMPOSE.read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=value list form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def healthcheck_command(service: dict) -> str:
    check = service.get("healthcheck") or {}
    assert not check.get("disable"), "health check disabled"
    test = check.get("test")
    assert test, "no health check"
    if isinstance(test, str):
        return test
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return " ".join(test[1:])


def depends_healthy(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    assert isinstance(deps, dict), "depends_on must use the long form with a condition"
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def build_of(service: dict) -> tuple[Path, Path, dict[str, str]]:
    build = service.get("build")
    assert isinstance(build, dict), "build must name a context and a dockerfile"
    context = (ROOT / build.get("context", ".")).resolve()
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(item.split("=", 1) for item in args)
    return context, dockerfile, {str(k): str(v) for k, v in args.items()}


def dockerfiles(services: dict) -> set[Path]:
    return {build_of(services[name])[1] for name in COMPONENTS}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


# --------------------------------------------------------------------------- Kafka


def test_kafka_is_apache_kafka_in_kraft_mode(services: dict) -> None:
    kafka = services["kafka"]
    image = kafka["image"]
    assert image.startswith("apache/kafka:"), image
    env = env_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env.get("KAFKA_NODE_ID")
    assert env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").startswith(f"{env['KAFKA_NODE_ID']}@")
    assert "CONTROLLER" in env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "")
    assert env.get("CLUSTER_ID"), "the image needs CLUSTER_ID in KRaft mode"
    assert not any("ZOOKEEPER" in key for key in env), "KRaft only, no ZooKeeper"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env.get("KAFKA_HEAP_OPTS"), "give the broker a small, explicit heap"
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "9092" in healthcheck_command(kafka)
    assert any(str(v).endswith(":/var/lib/kafka/data") for v in kafka.get("volumes", [])), "broker data on a volume"


def test_kafka_version_matches_the_local_stack(services: dict) -> None:
    """The design pins one Kafka version for the local stack and compose alike."""
    pom = ROOT / "deploy" / "kafka" / "pom.xml"
    if not pom.is_file():
        pytest.skip("deploy/kafka/pom.xml not present")
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text())
    assert match, "pom.xml pins no kafka.version"
    assert services["kafka"]["image"] == f"apache/kafka:{match.group(1)}"


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_has_healthcheck_and_an_init_script_for_every_database(services: dict) -> None:
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:")
    assert "pg_isready" in healthcheck_command(pg)
    scripts = []
    for volume in pg.get("volumes", []):
        source, _, target = str(volume).partition(":")
        if target.startswith("/docker-entrypoint-initdb.d"):
            path = (ROOT / source).resolve()
            assert path.is_file(), f"init script {source} does not exist"
            scripts.append(path.read_text())
    assert scripts, "no init script mounted into /docker-entrypoint-initdb.d"
    sql = "\n".join(scripts)
    for _, _, _, database in COMPONENTS.values():
        assert re.search(rf"CREATE DATABASE\s+\"?{database}\"?\s*;", sql, re.I), f"database {database} not created"
        block = re.search(rf"\\c(?:onnect)?\s+{database}\s*\n(.*?)(?=\\c|\Z)", sql, re.S)
        assert block and "pg_trgm" in block.group(1), f"pg_trgm not created in {database}"
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in pg.get("volumes", [])), "data on a volume"


def test_data_volumes_are_named(compose: dict, services: dict) -> None:
    named = set(compose.get("volumes") or {})
    for name in ("postgres", "kafka"):
        sources = [str(v).split(":", 1)[0] for v in services[name].get("volumes", [])]
        assert any(source in named for source in sources), f"{name} keeps its data on no named volume"


# --------------------------------------------------------------------------- components


def test_compose_runs_exactly_the_platform(services: dict) -> None:
    assert set(services) >= set(COMPONENTS) | {"kafka", "postgres"}
    extra = set(services) - set(COMPONENTS) - {"kafka", "postgres", "kafka-init"}
    assert not extra, f"unexpected services {extra}"


def test_component_table_agrees_with_the_local_stack() -> None:
    components = pytest.importorskip("pilar_devstack.components")
    stack = {c.name: (c.service_dir, c.package, c.default_port, c.database) for c in components.PLATFORM}
    assert stack == COMPONENTS


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_maps_to_a_real_package(name: str) -> None:
    folder, package, _, _ = COMPONENTS[name]
    service_dir = ROOT / folder
    assert (service_dir / "src" / package / "app.py").is_file()
    assert (service_dir / "alembic.ini").is_file(), "prestart runs alembic from the component's folder"
    assert (service_dir / "migrations").is_dir()


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_is_built_from_the_repository_root(services: dict, name: str) -> None:
    folder, package, port, _ = COMPONENTS[name]
    context, dockerfile, args = build_of(services[name])
    assert (context / "libs" / "pilar-kernel" / "pyproject.toml").is_file(), "the build context must hold libs/"
    assert (context / "uv.lock").is_file(), "the build context must hold uv.lock"
    assert dockerfile.is_file(), f"{dockerfile} does not exist"
    declared = {rest.split("=", 1)[0] for word, rest in instructions(dockerfile) if word == "ARG"}
    assert set(args) <= declared, f"build args {set(args) - declared} are not declared in {dockerfile.name}"
    if "SERVICE_DIR" in declared:  # the shared recipe: the arguments pick the component
        dist = re.search(r'^name\s*=\s*"([^"]+)"', (ROOT / folder / "pyproject.toml").read_text(), re.M)
        assert args.get("SERVICE_DIR") == folder
        assert args.get("PACKAGE") == package
        assert args.get("DIST") == dist.group(1)
        assert args.get("PORT") == str(port)


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_wiring(services: dict, name: str) -> None:
    _, _, port, database = COMPONENTS[name]
    service = services[name]
    env = env_of(service)

    url = env.get("PILAR_DATABASE_URL", "")
    assert url.startswith("postgresql+asyncpg://"), url
    assert re.search(rf"@postgres:5432/{database}$", url), f"{name} must use its own database {database}: {url}"

    bootstrap = env.get("PILAR_KAFKA_BOOTSTRAP", "")
    assert bootstrap.split(":")[0] == "kafka", bootstrap
    assert env.get("PILAR_JWKS_URL") or env.get("PILAR_JWKS_FILE"), "no JWKS to verify tokens with"
    if env.get("PILAR_JWKS_URL"):
        assert env["PILAR_JWKS_URL"].startswith("http://gateway:8000/"), "services take the gateway's public keys"
    assert env.get("PILAR_ENV") in ("production", "${PILAR_ENV:-production}")

    assert "/health" in healthcheck_command(service)
    assert depends_healthy(service).get("postgres") == "service_healthy"
    assert depends_healthy(service).get("kafka") == "service_healthy"
    assert "gateway" not in depends_healthy(service), "services fetch the JWKS lazily; no start-up coupling"
    assert service.get("restart") in ("always", "unless-stopped", "on-failure")

    published = [str(p) for p in service.get("ports", [])]
    assert any(p.endswith(f":{port}") for p in published), f"{name} does not publish port {port}"


def test_gateway_has_its_signing_key_and_routes(compose: dict, services: dict) -> None:
    env = env_of(services["gateway"])
    key_file = env.get("PILAR_JWT_PRIVATE_KEY_FILE", "")
    assert key_file.startswith("/run/secrets/"), "the signing key comes in as a secret file"
    targets = {
        (s.get("target") or s["source"]) if isinstance(s, dict) else s for s in services["gateway"].get("secrets", [])
    }
    assert Path(key_file).name in targets
    assert "jwt-kid" in targets, "SigningKey.from_files reads jwt-kid beside the PEM"
    for secret in compose.get("secrets", {}).values():
        assert INTERPOLATION.search(secret["file"]), "secret files come from a folder named in the environment"
    urls = json.loads(env["PILAR_SERVICE_URLS"])
    assert urls == {n: f"http://{n}:{p}" for n, (_, _, p, _) in COMPONENTS.items() if n != "gateway"}


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_no_secret_is_hard_coded(services: dict, name: str) -> None:
    env = env_of(services[name])
    for key in SECRET_ENV:
        match = INTERPOLATION.fullmatch(env.get(key, ""))
        assert match and match.group(1) == key, f"{name}: {key} must be ${{{key}:?...}} from the environment"
        assert match.group(2) == ":?", f"{name}: {key} must be required (compose refuses to start without it)"
    for key, value in env.items():
        if re.search(r"KEY|SECRET|PASSWORD|TOKEN", key) and not key.endswith("_FILE"):
            assert INTERPOLATION.fullmatch(value), f"{name}: {key} is hard-coded"
    password = re.match(r"postgresql\+asyncpg://[^:]+:([^@]*)@", env["PILAR_DATABASE_URL"])
    assert password and INTERPOLATION.fullmatch(password.group(1)), f"{name}: database password is hard-coded"


def test_postgres_password_comes_from_the_environment(services: dict) -> None:
    value = env_of(services["postgres"]).get("POSTGRES_PASSWORD", "")
    assert INTERPOLATION.fullmatch(value) and ":?" in value


def test_no_default_secret_anywhere_in_the_file() -> None:
    text = COMPOSE.read_text()
    for match in INTERPOLATION.finditer(text):
        name, op, _ = match.groups()
        if re.search(r"KEY|SECRET|PASSWORD", name):
            assert op == ":?", f"${{{name}}} must not have a default ({match.group(0)})"
    assert "insecure-development-secret" not in text
    assert "0" * 64 not in text


# --------------------------------------------------------------------------- images


def test_dockerfiles_are_multi_stage_non_root_and_health_checked(services: dict) -> None:
    for dockerfile in dockerfiles(services):
        steps = instructions(dockerfile)
        words = [word for word, _ in steps]
        assert words.count("FROM") >= 2, f"{dockerfile.name}: not multi-stage"
        froms = [rest for word, rest in steps if word == "FROM"]
        assert all("python:3.11-slim" in rest or "${PYTHON_IMAGE}" in rest for rest in froms)
        text = dockerfile.read_text()
        assert "ARG PYTHON_IMAGE=python:3.11-slim" in text or "python:3.11-slim" in froms[-1]

        users = [rest for word, rest in steps if word == "USER"]
        assert users, f"{dockerfile.name}: no USER"
        assert users[-1].split(":")[0] not in ("root", "0"), "the final stage must run as a non-root user"
        last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
        assert any(word == "USER" for word, _ in steps[last_from:]), "USER must be set in the runtime stage"

        assert "HEALTHCHECK" in words
        health = next(rest for word, rest in steps if word == "HEALTHCHECK")
        assert "CMD" in health
        assert "EXPOSE" in words

        assert "pip install" in text and "uv==" in text, "uv comes from the package index through pip"
        assert "UV_PYTHON_DOWNLOADS=never" in text
        sync = [rest for word, rest in steps if word == "RUN" and "uv sync" in rest]
        assert any("--frozen" in s and "--no-dev" in s and "--package" in s for s in sync)


def _entrypoint_script(dockerfile: Path) -> str:
    """The text of the program the image's ENTRYPOINT (or CMD) runs."""
    steps = instructions(dockerfile)
    entry = [rest for word, rest in steps if word in ("ENTRYPOINT", "CMD")]
    assert entry, f"{dockerfile.name}: no ENTRYPOINT"
    command = entry[0]
    parts = yaml.safe_load(command) if command.startswith("[") else shlex.split(command)
    scripts = [p for p in parts if p.endswith(".sh")]
    if not scripts:
        return " ".join(parts)
    name = Path(scripts[0]).name
    copies = [rest for word, rest in steps if word in ("COPY", "ADD") and name in rest]
    assert copies, f"{dockerfile.name}: {name} is never copied into the image"
    sources = [s for s in copies[0].split() if not s.startswith("--") and s.endswith(name)]
    path = ROOT / sources[0]
    assert path.is_file(), f"{path} does not exist"
    return path.read_text()


def test_entrypoint_migrates_before_serving(services: dict) -> None:
    for dockerfile in dockerfiles(services):
        script = _entrypoint_script(dockerfile)
        lines = [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]
        prestart = next(i for i, line in enumerate(lines) if "pilar_kernel.prestart" in line)
        uvicorn = next(i for i, line in enumerate(lines) if line.startswith("exec uvicorn"))
        assert prestart < uvicorn, "migrations must run before the server starts"
        assert "set -e" in script or "&&" in lines[prestart], "a failed migration must stop the container"
        assert re.search(r"\.app:create_app\"? --factory --host 0\.0\.0\.0 --port", lines[uvicorn])


def test_files_copied_into_images_exist(services: dict) -> None:
    for dockerfile in dockerfiles(services):
        for word, rest in instructions(dockerfile):
            if word != "COPY" or "--from=" in rest:
                continue
            sources = [s for s in rest.split() if not s.startswith("--")][:-1]
            for source in sources:
                if "$" not in source and source != ".":
                    assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"


def test_health_check_script_calls_health_with_the_standard_library() -> None:
    script = ROOT / "deploy" / "docker" / "healthcheck.py"
    text = script.read_text()
    assert "urllib.request" in text and "/health" in text
    assert "import requests" not in text and "httpx" not in text


def test_dockerignore_keeps_environments_and_state_out() -> None:
    ignore = ROOT / ".dockerignore"
    lines = {line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for needed in (".git", ".cache", ".run"):
        assert needed in lines or f"**/{needed}" in lines, f".dockerignore must exclude {needed}"
    assert ".venv" in lines or "**/.venv" in lines
    assert "**/__pycache__" in lines
    for kept in ("libs", "services", "gateway", "deploy", "uv.lock", "pyproject.toml", "deploy/docker"):
        assert kept not in lines, f".dockerignore must not exclude {kept}: the build needs it"


def test_deployment_doc_names_every_variable_compose_reads() -> None:
    doc = ROOT / "docs" / "deployment.md"
    assert doc.is_file()
    text = doc.read_text()
    for name in sorted({m.group(1) for m in INTERPOLATION.finditer(COMPOSE.read_text())}):
        assert name in text, f"docs/deployment.md does not mention {name}"


def test_servers_keep_idle_connections_longer_than_our_clients(services: dict) -> None:
    """uvicorn in the image keeps idle connections past the clients' idle expiry (issue 12, item 9)."""
    from pilar_kernel.http import KEEPALIVE_EXPIRY_S, SERVER_KEEP_ALIVE_S

    for dockerfile in dockerfiles(services):
        script = re.sub(r"\\\n\s*", " ", _entrypoint_script(dockerfile))
        match = re.search(r'exec uvicorn .*--timeout-keep-alive "?\$\{SERVICE_KEEP_ALIVE_S:-(\d+)\}"?', script)
        assert match, "uvicorn must be started with an explicit --timeout-keep-alive"
        assert int(match.group(1)) == SERVER_KEEP_ALIVE_S >= 2 * KEEPALIVE_EXPIRY_S


# --------------------------------------------------------------------------- settings in production


def _resolved_environment(service: dict) -> dict[str, str]:
    """The container's PILAR_* variables as compose would pass them: a required ``${X:?...}``
    becomes a placeholder that is not any development default, ``${X:-d}`` its default."""

    def value(match: re.Match) -> str:
        name, op, default = match.groups()
        if op in (":-", "-"):
            return default
        return "ab" * 32  # 64 hex characters: valid for keys, never a development default

    return {k: INTERPOLATION.sub(value, v) for k, v in env_of(service).items() if k.startswith("PILAR_")}


def _settings_class(package: str):
    import importlib

    return importlib.import_module(f"{package}.settings").Settings


def _construct(settings_class, environment: dict[str, str], monkeypatch) -> Exception | None:
    import os

    with monkeypatch.context() as m:
        for key in [k for k in os.environ if k.startswith("PILAR_")]:
            m.delenv(key)
        for key, value in environment.items():
            m.setenv(key, value)
        try:
            settings_class()
        except Exception as exc:  # pydantic's ValidationError wraps the validators' refusal
            return exc
    return None


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_every_setting_refusing_its_default_in_production_is_supplied(services: dict, name: str, monkeypatch) -> None:
    """Issue 12, item 5: compose started disbursement without PILAR_BANK_HMAC_SECRET, which its
    settings rightly refuse. Each component's settings class is built as the container would
    build it (production, compose's variables); then, setting by setting, without the one
    variable, to find every setting that refuses its default in production: compose must set
    each of those, a secret always as ``${X:?...}`` from the environment, never a value."""
    _, package, _, _ = COMPONENTS[name]
    settings_class = _settings_class(package)
    environment = _resolved_environment(services[name])
    assert environment.get("PILAR_ENV") == "production"
    error = _construct(settings_class, environment, monkeypatch)
    assert error is None, f"{name} would not start from docker-compose.yml: {error}"

    raw = env_of(services[name])
    refusing = []
    for field in settings_class.model_fields:
        variable = f"PILAR_{field.upper()}"
        without = {k: v for k, v in environment.items() if k != variable}
        if _construct(settings_class, without, monkeypatch) is not None:
            refusing.append(variable)
    # Alternatives (PILAR_JWKS_FILE or PILAR_JWKS_URL) refuse only together: check the pair.
    pairs = [("PILAR_JWKS_FILE", "PILAR_JWKS_URL")]
    for pair in pairs:
        without = {k: v for k, v in environment.items() if k not in pair}
        if _construct(settings_class, without, monkeypatch) is not None:
            assert any(k in raw for k in pair), f"{name}: compose supplies none of {pair}"
    assert "PILAR_NIK_HASH_KEY" in refusing and "PILAR_PII_KEY" in refusing, "introspection found nothing"
    for variable in refusing:
        assert variable in raw, f"{name}: {variable} refuses its default in production and compose does not set it"
        if re.search(r"KEY|SECRET|PASSWORD|TOKEN", variable):
            match = INTERPOLATION.fullmatch(raw[variable])
            assert match and match.group(1) == variable and match.group(2) == ":?", (
                f"{name}: {variable} is a secret: compose must require it as ${{{variable}:?...}}"
            )


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_no_setting_keeps_a_localhost_default_in_a_container(services: dict, name: str) -> None:
    """A default that points at this machine (127.0.0.1, localhost) means nothing inside a
    container: compose must set every such setting of the component (found from its class)."""
    _, package, _, _ = COMPONENTS[name]
    settings_class = _settings_class(package)
    env = env_of(services[name])
    for field, info in settings_class.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if isinstance(default, str) and re.search(r"127\.0\.0\.1|localhost", default):
            assert f"PILAR_{field.upper()}" in env, f"{name}: PILAR_{field.upper()} keeps its default {default!r}"


def test_disbursement_pays_through_a_bank(services: dict) -> None:
    """Without PILAR_BANK_URL the bank sender does not run and bank rounds are never paid."""
    env = env_of(services["disbursement"])
    for variable in ("PILAR_BANK_URL", "PILAR_BANK_HMAC_SECRET", "PILAR_BANK_CALLBACK_URL"):
        match = INTERPOLATION.fullmatch(env.get(variable, ""))
        assert match and match.group(2) == ":?", f"{variable} must be required from the environment"
