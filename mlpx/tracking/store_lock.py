"""Creating and migrating a SQLite MLflow store, serialised across processes by a lock file beside it.

Several ``python -m mlpx`` started at once on a store that does not exist yet all try to create
and migrate it, and a brand-new store migrated by two processes at once breaks ("table
_alembic_tmp_params already exists") and stays broken. ``open_store`` takes an exclusive
``fcntl.flock`` on ``<store>.lock`` while MLflow creates or checks the store, so one process
migrates and the others find it done; the lock works for any processes, not only the jobs of one
sweep. A store an interrupted migration left half-made is reported with the file and the
commands that replace or repair it.
"""

import contextlib
import fcntl
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional
from urllib.parse import unquote

from mlpx.errors import TrackingError

#: seconds to wait for another process creating or migrating the same store (one takes ~2 s)
LOCK_TIMEOUT = 300.0


def sqlite_path(uri: str) -> Optional[Path]:
    """The database file of a ``sqlite:///`` URI, or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///") :].split("?", 1)[0])
    return Path(path) if path and path != ":memory:" else None


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def locked(uri: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the store's lock file (nothing to lock for a server or a non-SQLite database)."""
    database = sqlite_path(uri)
    if database is None:
        yield
        return
    path = lock_path(database)
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise TrackingError(f"cannot create the lock file {path} of the MLflow store: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(
                        f"waited {timeout:.0f} s for {path}, held by another process creating or "
                        f"migrating the MLflow store {database}; see which with `fuser {path}`"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def open_store(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri`` whose store exists and is migrated (created if need be).

    MLflow caches the store per URI in the process, so later clients reuse it without migrating.
    """
    from mlflow import MlflowClient

    with locked(uri):
        try:
            client = MlflowClient(uri)
            client.search_experiments(max_results=1)  # makes MLflow create or check the store
        except Exception as exc:
            database = sqlite_path(uri)
            broken = half_made(database) if database is not None else None
            if broken is None:
                raise
            raise TrackingError(broken_store_message(database, broken, exc)) from exc
    return client


def half_made(database: Path) -> Optional[List[str]]:
    """The leftovers of an interrupted migration in ``database`` (``_alembic_tmp_*`` tables, or
    a schema version that is not MLflow's latest), or None when it shows none."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    if not database.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            listing = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = [row[0] for row in listing]
            version = None
            if "alembic_version" in tables:
                row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
                version = row[0] if row else None
    except sqlite3.Error as exc:
        return [f"not a readable SQLite database ({exc})"]
    leftovers = [f"table {t}" for t in tables if t.startswith("_alembic_tmp_")]
    latest = _get_latest_schema_revision()
    if tables and version != latest:
        leftovers.append(f"schema version {version or 'missing'} (MLflow expects {latest})")
    return leftovers or None


def broken_store_message(database: Path, leftovers: List[str], exc: BaseException) -> str:
    """What is wrong with the half-made store, and the exact commands to replace or repair it."""
    tmp_tables = [item.split(" ", 1)[1] for item in leftovers if item.startswith("table _alembic_tmp_")]
    drop = "; ".join(f"DROP TABLE {t}" for t in tmp_tables)
    repair = f"`mlflow db upgrade sqlite:///{database}`"
    if drop:
        script = f"import sqlite3; sqlite3.connect('{database}').executescript('{drop}')"
        repair = f'`python -c "{script}"`, then {repair}'
    detail = str(getattr(exc, "message", None) or exc).splitlines()[0][:300]
    return (
        f"the MLflow store {database} was left half-made by an interrupted creation or migration "
        f"({', '.join(leftovers)}; MLflow says: {detail}). If it holds no runs you need, replace "
        f"it: `mv {database} {database}.broken` (the next run creates a new one). To keep its runs, "
        f"back it up and repair it: {repair}."
    )
