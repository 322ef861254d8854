"""Apache Kafka for the local stack: one KRaft node (broker + controller) on the machine's Java.

The broker's jars are fetched once by Maven (``deploy/kafka/pom.xml``) into
``<repo>/.cache/kafka/libs``; a marker file there records the Kafka version and the pom's
hash, so a changed pom fetches again. The node's ``server.properties`` and its log folder
live in ``<run_dir>/data/kafka``; storage is formatted once, so a restart keeps topics and
committed offsets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from .processes import (
    StackError,
    failure,
    kill_group,
    pid_alive,
    port_open,
    read_pid,
    remove_file,
    run_coroutine,
    spawn,
    terminate_group,
    write_pid,
)

MARKER = ".pilar-kafka-version"
JAVA_HINT = "install a Java 17 runtime (Debian: apt-get install openjdk-17-jre-headless)"
MAVEN_HINT = "install Apache Maven (Debian: apt-get install maven); it fetches the Kafka jars once"
DEFAULT_HEAP = "-Xms256m -Xmx512m"


# --------------------------------------------------------------------------- prerequisites


def kafka_version(pom: Path) -> str:
    """The Kafka version the pom pins (``<kafka.version>``)."""
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text())
    if not match:
        raise StackError(f"{pom} does not set <kafka.version>")
    return match.group(1)


def find_java() -> str:
    """The java executable (17 or newer), or a StackError saying what to install."""
    java = shutil.which("java")
    if java is None and os.environ.get("JAVA_HOME"):
        candidate = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        java = str(candidate) if candidate.is_file() else None
    if java is None:
        raise StackError(f"java not found: {JAVA_HINT}")
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"java ({java}) does not run: {exc}; {JAVA_HINT}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0" style
            major = int(match.group(2))
        if major < 17:
            raise StackError(f"java {major} found at {java}, but Kafka 4 needs Java 17 or newer: {JAVA_HINT}")
    return java


def find_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"mvn not found: {MAVEN_HINT}")
    return mvn


# --------------------------------------------------------------------------- jars


def _marker_text(pom: Path) -> str:
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    return f"kafka {kafka_version(pom)}\npom-sha256 {digest}\n"


def jars_present(libs_dir: Path, pom: Path) -> bool:
    try:
        marker = (libs_dir / MARKER).read_text()
    except OSError:
        return False
    return marker == _marker_text(pom) and any(libs_dir.glob("kafka_2.13-*.jar"))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_jars(pom: Path, libs_dir: Path) -> bool:
    """Fetch the broker's jars with Maven into libs_dir unless present; True when fetched."""
    if jars_present(libs_dir, pom):
        return False
    with _file_lock(libs_dir.parent / ".fetch.lock"):  # another process may be fetching
        if jars_present(libs_dir, pom):
            return False
        mvn = find_mvn()
        partial = libs_dir.with_name(libs_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
        ]  # fmt: skip
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
            output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
            raise StackError(
                f"kafka: fetching the broker jars with Maven failed (exit code {result.returncode}):\n"
                f"  {shlex.join(cmd)}\n{output}"
            )
        (partial / MARKER).write_text(_marker_text(pom))
        shutil.rmtree(libs_dir, ignore_errors=True)  # never mix jars of two versions
        partial.rename(libs_dir)
    return True


# --------------------------------------------------------------------------- readiness and topics


async def _probe(bootstrap: str, timeout: float) -> None:
    """Raise unless the broker answers a metadata request naming at least one broker."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
        if not cluster.get("brokers"):
            raise StackError("kafka: metadata names no broker yet")
    finally:
        await admin.close()


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when the broker answers a metadata request (safe to call inside an event loop)."""
    try:
        run_coroutine(_probe(bootstrap, timeout))
    except Exception:
        return False
    return True


# --------------------------------------------------------------------------- the broker


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def server_properties(*, port: int, controller_port: int, log_dir: Path, partitions: int) -> str:
    return f"""\
# Written by pilar-stack at every start (deploy/src/pilar_devstack/kafka.py): edit it there.
# One KRaft node that is broker and controller, for development only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs={log_dir}

num.partitions={partitions}
auto.create.topics.enable=false
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# A node killed with SIGKILL must wait for its old broker session to expire before it can
# register again; short sessions make a crash-restart take seconds instead of ~10 s.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=268435456
"""


class KafkaBroker:
    """The single local Kafka node: format, start, wait ready, kill, stop."""

    def __init__(
        self,
        *,
        data_dir: Path,
        libs_dir: Path,
        log_path: Path,
        pid_path: Path,
        log4j_config: Path,
        port: int,
        controller_port: int,
        partitions: int,
    ) -> None:
        self.data_dir = data_dir
        self.libs_dir = libs_dir
        self.log_path = log_path
        self.pid_path = pid_path
        self.log4j_config = log4j_config
        self.port = port
        self.controller_port = controller_port
        self.partitions = partitions
        self._proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    def _classpath(self) -> str:
        return f"{self.libs_dir}/*"

    def pid(self) -> int | None:
        pid = read_pid(self.pid_path)
        if pid_alive(pid, "kafka.Kafka"):
            return pid
        if self._proc is not None:
            self._proc.poll()
        return None

    def _own_proc(self, pid: int) -> subprocess.Popen | None:
        return self._proc if self._proc is not None and self._proc.pid == pid else None

    def _format(self, java: str) -> None:
        if (self.log_dir / "meta.properties").is_file():
            return
        cmd = [
            java, "-Xmx256m", "-cp", self._classpath(), f"-Dlog4j2.configurationFile={self.log4j_config}",
            # "=" form: a random id may start with "-", which argparse would read as an option.
            "kafka.tools.StorageTool", "format", f"--cluster-id={new_cluster_id()}", "-c", str(self.properties_path),
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n".encode())
            log.flush()
            code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT).returncode
        if code != 0:
            raise failure(f"kafka: formatting the storage failed (exit code {code})", self.log_path)

    def start(self, timeout: float = 90.0) -> None:
        """Start the node unless it already answers; wait until it serves metadata."""
        pid = self.pid()
        if pid is not None:
            if port_open(self.port) and broker_answers(self.bootstrap, 10.0):
                return
            print(f"kafka: pid {pid} does not answer at {self.bootstrap}; restarting it", file=sys.stderr)
            self.kill()
        remove_file(self.pid_path)
        for port in (self.port, self.controller_port):
            if port_open(port):
                raise StackError(
                    f"kafka: port {port} is already in use by another program; stop it or set "
                    f"{'PILAR_KAFKA_PORT' if port == self.port else 'PILAR_KAFKA_CONTROLLER_PORT'}"
                )
        java = find_java()
        if not any(self.libs_dir.glob("kafka_2.13-*.jar")):
            raise StackError(f"kafka: no broker jars in {self.libs_dir}; fetch them first (pilar-stack up does)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(
            server_properties(
                port=self.port,
                controller_port=self.controller_port,
                log_dir=self.log_dir,
                partitions=self.partitions,
            )
        )
        self._format(java)
        heap = shlex.split(os.environ.get("PILAR_KAFKA_HEAP_OPTS") or DEFAULT_HEAP)
        cmd = [
            java, *heap, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.log4j_config}",
            "-cp", self._classpath(), "kafka.Kafka", str(self.properties_path),
        ]  # fmt: skip
        self._proc = spawn(cmd, cwd=self.data_dir, env=os.environ, log_path=self.log_path)
        write_pid(self.pid_path, self._proc.pid)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                remove_file(self.pid_path)
                raise failure(f"kafka: the broker exited with code {proc.returncode} while starting", self.log_path)
            if port_open(self.port) and broker_answers(self.bootstrap, 5.0):
                return
            if time.monotonic() >= deadline:
                raise failure(f"kafka: the broker did not answer at {self.bootstrap} within {timeout:.0f} s",
                              self.log_path)
            time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL the broker (a crash); start() brings it back on the same data and ports."""
        pid = self.pid()
        if pid is not None:
            kill_group(pid, self._own_proc(pid))
        remove_file(self.pid_path)

    def stop(self, timeout: float = 20.0) -> None:
        """Controlled shutdown (SIGTERM), SIGKILL after ``timeout`` s; idempotent."""
        pid = self.pid()
        if pid is not None:
            terminate_group(pid, timeout, self._own_proc(pid))
        remove_file(self.pid_path)
        self._proc = None
