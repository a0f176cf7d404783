"""Several machines: a sweep against an `mlflow server` whose backend store is a real PostgreSQL.

The test starts its own throwaway cluster with Debian's binaries (`apt-get install postgresql`, as
.ci/run does) on a free loopback port; it never needs or touches a system PostgreSQL service.
"""

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import SMALL, _free_port, running_mlflow_server, stop_process
from tests.test_sweeps import _assert_complete, _sweep_runs


def _unavailable(reason: str):
    """Skip on a developer machine; in CI (`CI` set: .ci/run installs PostgreSQL) fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (failing, not skipping, because CI is set)", pytrace=False)
    pytest.skip(reason)


def _psycopg():
    """psycopg 3: SQLAlchemy 2.1's driver for `postgresql://` URIs, so mlflow server needs it too."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed: pip install -e '.[dev]'")
    return psycopg


def _postgres_bin() -> Path:
    """The bin directory of the newest Debian PostgreSQL (/usr/lib/postgresql/<version>/bin)."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [b for b in found if (b / "postgres").exists()]
    if not found:
        _unavailable("PostgreSQL binaries not found in /usr/lib/postgresql/*/bin: apt-get install postgresql")
    return max(found, key=lambda b: tuple(int(x) for x in b.parent.name.split(".") if x.isdigit()))


def _as_postgres_user() -> dict:
    """Popen arguments that run PostgreSQL as the `postgres` OS user: it refuses to run as root."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        _unavailable("running as root, but there is no `postgres` user (Debian's package creates it)")
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _stop(process: subprocess.Popen):
    """Fast shutdown (SIGINT to the postmaster), then SIGKILL to its process group if it hangs."""
    stop_process(process, signal.SIGINT)


@pytest.fixture(scope="module")
def postgres_uri():
    """A throwaway PostgreSQL cluster on a free loopback port; yields a password user's database URI."""
    psycopg = _psycopg()
    bindir = _postgres_bin()
    as_user = _as_postgres_user()
    # under /tmp, not pytest's root-only tmp dirs: the postgres user must reach its data and socket
    root = Path(tempfile.mkdtemp(prefix="mlpx-pg-"))
    process = None
    try:
        if as_user:
            os.chown(root, as_user["user"], as_user["group"])
        initdb = subprocess.run(
            [bindir / "initdb", "-D", root / "data", "-U", "postgres", "--auth-local=trust"]
            + ["--auth-host=scram-sha-256", "--locale=C", "--encoding=UTF8", "--no-sync"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            **as_user,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stdout}{initdb.stderr}")
        port = _free_port()
        with open(root / "postgres.log", "w") as log_file:
            process = subprocess.Popen(
                [bindir / "postgres", "-D", root / "data", "-p", str(port), "-k", str(root)]
                + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                cwd=root,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,
                **as_user,
            )
        deadline = time.monotonic() + 30
        while True:
            try:  # the superuser over the Unix socket (trust); mlflow gets a password user over TCP
                admin = psycopg.connect(
                    host=str(root), port=port, user="postgres", dbname="postgres", autocommit=True
                )
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (root / "postgres.log").read_text()
                    raise RuntimeError(f"PostgreSQL did not start: {log}") from None
                time.sleep(0.2)
        password = secrets.token_hex(16)
        with admin:  # DDL takes no bound parameters: quote the password as a literal
            admin.execute(psycopg.sql.SQL("CREATE ROLE mlflow LOGIN PASSWORD {}").format(password))
            admin.execute("CREATE DATABASE mlflow OWNER mlflow")
        yield f"postgresql://mlflow:{password}@127.0.0.1:{port}/mlflow"
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_mlflow_server(postgres_uri, tmp_path_factory):
    """`mlflow server --backend-store-uri postgresql://...`; stopped before the cluster is."""
    with running_mlflow_server(tmp_path_factory.mktemp("pg-server"), postgres_uri) as uri:
        yield uri


def test_sweep_on_a_postgresql_backed_server(tmp_path, run_mlpx, postgres_uri, postgres_mlflow_server):
    completed = run_mlpx(
        ["-m", "tracking=server", "optimizer.lr=0.05,0.1", *SMALL],
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": postgres_mlflow_server},
    )
    assert completed.returncode == 0, completed.stderr
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # nothing went to the local store
    client = MlflowClient(postgres_mlflow_server)
    parent, children = _sweep_runs(client)
    _assert_complete(client, parent, children, expected_jobs=2)
    assert sorted(r.data.params["optimizer.lr"] for r in children) == ["0.05", "0.1"]
    artifacts = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert {"config.yaml", "weights.npz"} <= artifacts
    local = client.download_artifacts(children[0].info.run_id, "config.yaml", str(tmp_path))
    assert postgres_mlflow_server in Path(local).read_text()  # served back through the server

    # the runs are rows in PostgreSQL itself, read as the password user over loopback TCP
    with _psycopg().connect(postgres_uri) as connection:
        rows = dict(connection.execute("SELECT run_uuid, status FROM runs").fetchall())
        (val_acc_steps,) = connection.execute(
            "SELECT count(*) FROM metrics WHERE run_uuid = %s AND key = 'val_acc'", (children[0].info.run_id,)
        ).fetchone()
    assert rows == {run.info.run_id: "FINISHED" for run in (parent, *children)}
    assert val_acc_steps == 2  # the full history, one row per epoch
