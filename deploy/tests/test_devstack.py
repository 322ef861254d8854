"""The local stack for real: PostgreSQL and Kafka on free ports in a temporary folder.

Needs java 17, the PostgreSQL server binaries and (the first time) Maven to fetch the broker
jars into <repo>/.cache/kafka/libs. The service-process test uses a tiny stand-in service,
so it runs without the real services.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pilar_devstack import (
    COMPONENTS,
    Component,
    LocalStack,
    StackError,
    ensure_topics,
    free_port,
)
from pilar_devstack.processes import pid_alive, read_pid

pytestmark = pytest.mark.timeout(240)

TOPICS = ["devstack.alpha", "devstack.beta"]

FAKE_APP = '''
import json, os

def create_app():
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = json.dumps({k: v for k, v in os.environ.items() if k.startswith("PILAR_")}).encode()
        status = 200 if scope["path"] in ("/ready", "/env") else 404
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    return app
'''


@pytest.fixture(scope="module")
def fake_service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fakesvc")
    (folder / "devstack_fakesvc").mkdir()
    (folder / "devstack_fakesvc" / "__init__.py").write_text("")
    (folder / "devstack_fakesvc" / "app.py").write_text(textwrap.dedent(FAKE_APP))
    (folder / "devstack_fakemigrate.py").write_text("print('migrated')\n")
    (folder / "devstack_brokenmigrate.py").write_text("raise SystemExit('no database for you')\n")
    sys.path.insert(0, str(folder))  # as the workspace install does for real services (topic discovery)
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def devstack(tmp_path_factory: pytest.TempPathFactory, fake_service: Path):
    run_dir = tmp_path_factory.mktemp("devstack")
    secrets = run_dir / "secrets"  # stand-in signing keys: the kernel's write_dev_keys is not under test here
    secrets.mkdir()
    (secrets / "jwt-private.pem").write_text("not a key\n")
    (secrets / "jwks.json").write_text('{"keys": []}\n')
    fake = Component("fake", "devstack_fakesvc", 0, "devstack_a", str(fake_service), "devstack_fakemigrate")
    broken = Component("broken", "devstack_fakesvc", 0, "devstack_a", str(fake_service), "devstack_brokenmigrate")
    stack = LocalStack(
        run_dir=run_dir,
        pg_port=free_port(),
        kafka_port=free_port(),
        controller_port=free_port(),
        partitions=3,
        components=[*COMPONENTS, fake, broken],
        component_ports={"fake": free_port(), "broken": free_port()},
    )
    yield stack
    stack.stop()


def _plain_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def test_postgres_databases_accept_connections(devstack: LocalStack) -> None:
    stack = devstack
    import asyncpg

    started = time.monotonic()
    stack.start_postgres()
    stack.start_postgres()  # idempotent
    stack.create_databases(["devstack_a", "devstack_b"])
    stack.create_databases(["devstack_a"])  # idempotent
    print(f"postgres up with databases in {time.monotonic() - started:.1f} s")

    async def check() -> tuple[str, str, bool]:
        conn = await asyncpg.connect(_plain_url(stack.database_url("devstack_a")))
        try:
            row = await conn.fetchrow(
                "SELECT current_database() AS db, current_user AS usr, "
                "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') AS trgm"
            )
            await conn.execute("CREATE TABLE t (id int primary key)")  # the owner may create tables
            return row["db"], row["usr"], row["trgm"]
        finally:
            await conn.close()

    assert asyncio.run(check()) == ("devstack_a", "pilar", True)

    if not stack.postgres.external:  # a crash-like stop and a restart keep the data
        stack.stop_postgres("immediate")
        assert stack.postgres.pid() is None
        stack.start_postgres()

        async def tables() -> list[str]:
            conn = await asyncpg.connect(_plain_url(stack.database_url("devstack_a")))
            try:
                rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                return [row["tablename"] for row in rows]
            finally:
                await conn.close()

        assert asyncio.run(tables()) == ["t"]

        before = stack.postgres.pid()
        stack.restart_postgres("fast")  # a new postmaster, the same data, accepting connections at once
        assert stack.postgres.pid() not in (None, before)
        assert asyncio.run(tables()) == ["t"]
    assert stack.database_url("devstack_b").startswith("postgresql+asyncpg://pilar:")


async def test_topics_are_created_idempotently(devstack: LocalStack) -> None:
    """Runs inside pytest-asyncio's loop: the blocking LocalStack calls must still work."""
    stack = devstack
    from aiokafka.admin import AIOKafkaAdminClient

    started = time.monotonic()
    stack.start_kafka()
    print(f"kafka up in {time.monotonic() - started:.1f} s")
    assert stack.kafka_bootstrap == f"127.0.0.1:{stack.kafka_port}"

    assert sorted(await ensure_topics(stack.kafka_bootstrap, TOPICS, 3)) == TOPICS
    assert await ensure_topics(stack.kafka_bootstrap, TOPICS, 3) == []
    assert stack.ensure_topics([*TOPICS, TOPICS[0]]) == []  # sync wrapper inside a running loop

    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(TOPICS)}
    finally:
        await admin.close()
    assert {name: len(t["partitions"]) for name, t in described.items()} == {name: 3 for name in TOPICS}


def test_kafka_survives_kill_and_restart(devstack: LocalStack) -> None:
    stack = devstack
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(TOPICS[0], f"m{i}".encode(), key=f"k{i}".encode())
        finally:
            await producer.stop()

    async def consume(count: int) -> list[bytes]:
        consumer = AIOKafkaConsumer(TOPICS[0], bootstrap_servers=stack.kafka_bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        values: list[bytes] = []
        try:
            async with asyncio.timeout(30):
                while len(values) < count:
                    batch = await consumer.getmany(timeout_ms=1000)
                    values += [record.value for records in batch.values() for record in records]
        finally:
            await consumer.stop()
        return values

    asyncio.run(produce())
    pid = read_pid(stack.kafka.pid_path)
    assert pid_alive(pid, "kafka.Kafka")

    stack.kill_kafka()
    assert not pid_alive(pid)
    started = time.monotonic()
    stack.start_kafka()
    print(f"kafka restarted after SIGKILL in {time.monotonic() - started:.1f} s")
    assert read_pid(stack.kafka.pid_path) != pid

    asyncio.run(produce())
    assert sorted(asyncio.run(consume(20))) == sorted([f"m{i}".encode() for i in range(10)] * 2)


def test_service_processes(devstack: LocalStack) -> None:
    stack = devstack
    import httpx

    pytest.importorskip("uvicorn")
    assert stack.start_components(["fake"], extra_env={"PILAR_EXTRA": "yes"}) == ["fake"]
    pid = read_pid(stack.services.pid_path("fake"))
    assert pid_alive(pid)
    assert "migrated" in stack.services.migrate_log_path("fake").read_text()

    env = httpx.get(f"{stack.url('fake')}/env").json()
    assert env["PILAR_ENV"] == "development"
    assert env["PILAR_DATABASE_URL"] == stack.database_url("devstack_a")
    assert env["PILAR_KAFKA_BOOTSTRAP"] == stack.kafka_bootstrap
    assert env["PILAR_TOPIC_PARTITIONS"] == "3"
    assert env["PILAR_EXTRA"] == "yes"
    assert len(env["PILAR_NIK_HASH_KEY"]) == 64 and len(env["PILAR_PII_KEY"]) == 64
    assert env["PILAR_JWKS_FILE"] == str(stack.secrets_dir / "jwks.json")
    urls = json.loads(env["PILAR_SERVICE_URLS"])
    assert urls["registry"] == stack.url("registry") and "gateway" not in urls
    assert env["PILAR_GATEWAY_URL"] == stack.url("gateway")

    assert stack.start_components(["fake"]) == []  # running and ready: left alone
    assert read_pid(stack.services.pid_path("fake")) == pid
    row = next(r for r in stack.status() if r.name == "fake")
    assert (row.state, row.pid, row.ready) == ("running", pid, True)

    stack.kill_component("fake")  # a crash leaves a stale pid file behind ...
    assert not pid_alive(pid)
    assert stack.start_components(["fake"], extra_env={"PILAR_EXTRA": "yes"}) == ["fake"]  # ... which the next start cleans up
    pid = read_pid(stack.services.pid_path("fake"))
    assert pid is not None

    stack.kill_component("fake")
    stack.restart_component("fake")  # as a supervisor would: with the environment it was started with
    assert read_pid(stack.services.pid_path("fake")) not in (None, pid)
    assert httpx.get(f"{stack.url('fake')}/env").json()["PILAR_EXTRA"] == "yes"

    with pytest.raises(StackError, match=r"broken: migrations failed .*broken-migrate\.log"):
        stack.start_components(["broken"])
    assert read_pid(stack.services.pid_path("broken")) is None


def test_stop_leaves_no_process_behind(devstack: LocalStack) -> None:
    stack = devstack
    pids = {
        "postgres": stack.postgres.pid(),
        "kafka": read_pid(stack.kafka.pid_path),
        "fake": read_pid(stack.services.pid_path("fake")),
    }
    if stack.postgres.external:
        pids.pop("postgres")
    assert all(pids.values()), pids
    started = time.monotonic()
    stack.stop()
    print(f"stack stopped in {time.monotonic() - started:.1f} s")
    assert {name: pid for name, pid in pids.items() if pid_alive(pid)} == {}
    assert list((stack.run_dir / "pids").glob("*.pid")) == []
    assert all(row.state in ("stopped", "external") for row in stack.status())
    stack.stop()  # idempotent


def test_import_starts_nothing() -> None:
    """Importing the package and building a LocalStack touches no process and no port."""
    code = (
        "import pilar_devstack; from pathlib import Path; "
        "pilar_devstack.LocalStack(run_dir=Path('/nonexistent/run')); "
        "assert not Path('/nonexistent/run').exists()"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr


def test_servers_keep_idle_connections_longer_than_clients_keep_them() -> None:
    """Issue 12 item 9: every process is started with an explicit keep-alive, well past the
    idle expiry of our clients, so a client never takes a connection the server is closing."""
    from pilar_devstack.processes import service_command
    from pilar_kernel.http import KEEPALIVE_EXPIRY_S, SERVER_KEEP_ALIVE_S

    command = service_command("registry", 8001)
    keep_alive = float(command[command.index("--timeout-keep-alive") + 1])
    assert keep_alive == SERVER_KEEP_ALIVE_S >= 2 * KEEPALIVE_EXPIRY_S
