"""Scale-out on real engines: 3-job sweeps through Hydra's Ray and submitit launchers, run here.

The ``scale`` extra (``pip install -e ".[scale]"``, installed by .ci/run) brings
hydra-ray-launcher and hydra-submitit-launcher. Without it these tests fail and say so: a skip
would let a CI that forgot the install pass. Each sweep is the real CLI in a session of its own,
bounded in time and ended whole (Ray's daemons and workers included), and is read back from its
SQLite store: one parent run, three FINISHED children of it with every epoch's metrics, nothing
left RUNNING, and never more jobs at a time than the cores hold at the jobs' BLAS thread count.
The sweeps in these tests are the ones the README's "Sweeps at scale" section shows.
"""

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from mlflow import MlflowClient

from tests.conftest import SMALL, hermetic_environment, store_uri

pytestmark = pytest.mark.slow

#: the cores the jobs share: jobs at a time x BLAS threads per job must not exceed them
CORES = len(os.sched_getaffinity(0))
LEARNING_RATES = ["0.01", "0.03", "0.1"]
SWEEP = [f"optimizer.lr={','.join(LEARNING_RATES)}", *SMALL]
#: one sweep's bound (they take ~20-30 s here: engine start, three jobs, the summary)
TIMEOUT = 240

#: a new local Ray instance of CORES CPUs (even if a cluster runs on this machine), one CPU per
#: job: Ray runs CORES jobs at a time and starts each job's BLAS with OMP_NUM_THREADS=1
RAY_LOCAL = [
    "hydra/launcher=ray",
    "hydra.launcher.ray.init.address=local",
    f"+hydra.launcher.ray.init.num_cpus={CORES}",
    "+hydra.launcher.ray.remote.num_cpus=1",
]
#: the same jobs on a running Ray cluster: ray.init refuses the object store size the launcher
#: sets by default (meant for the local instance it starts) when it joins one
RAY_CLUSTER = [
    "hydra/launcher=ray",
    "hydra.launcher.ray.init.address={address}",
    "++hydra.launcher.ray.init.object_store_memory=null",
    "+hydra.launcher.ray.remote.num_cpus=1",
]
#: Ray 2.60 clusters want a token (``ray start`` made one in ~/.ray/auth_token); a driver
#: joining one at an explicit address sends it only when told to
RAY_CLUSTER_ENV = {"RAY_AUTH_MODE": "token"}
#: submitit's local executor starts every job it is given at once: the sweeper hands it CORES
#: jobs at a time, each training on one BLAS thread
SUBMITIT_LOCAL = [
    "hydra/launcher=submitit_local",
    f"hydra.sweeper.max_batch_size={CORES}",
    "trainer.blas_threads=1",
]


@pytest.fixture(autouse=True)
def scale_extra() -> None:
    """Fail, naming the install, when the launchers of the ``scale`` extra are missing."""
    modules = ("ray", "submitit", "hydra_plugins.hydra_ray_launcher", "hydra_plugins.hydra_submitit_launcher")
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f"the scale extra is not installed (no {', '.join(missing)}): "
            'run `pip install -e ".[scale]"` (.ci/run installs it)',
            pytrace=False,
        )


@pytest.fixture
def engine_env(mnist_cache) -> Iterator[Dict[str, str]]:
    """The sweep's environment: hermetic MLflow, the test MNIST cache, Ray's files in a fresh
    short folder (its socket paths must stay short) and no RAY_ADDRESS to join by accident."""
    ray_tmp = tempfile.mkdtemp(prefix="mlpx-ray-", dir="/tmp")
    env = {k: v for k, v in hermetic_environment().items() if k != "RAY_ADDRESS"}
    env.update(
        XDG_CACHE_HOME=str(mnist_cache),
        HYDRA_FULL_ERROR="1",
        RAY_TMPDIR=ray_tmp,
        RAY_USAGE_STATS_ENABLED="0",
    )
    yield env
    shutil.rmtree(ray_tmp, ignore_errors=True)


def _session_members(session: int) -> List[int]:
    """Live processes of a session (``/proc/PID/stat``: state and session after the name)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(entry))
    return members


def _end_session(session: int, first_signal: int = signal.SIGKILL, grace: float = 15.0) -> List[str]:
    """Wait up to ``grace`` s for the processes of the session we started to end, then send
    ``first_signal`` and, 3 s later, SIGKILL to those left; return the commands that were left."""
    deadline = time.monotonic() + grace
    while _session_members(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = []
    for pid in _session_members(session):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                left.append(cmdline.read().replace(b"\0", b" ").decode(errors="replace")[:120])
        except OSError:
            continue
    for sig, wait in ((first_signal, 3.0), (signal.SIGKILL, 5.0)):
        for pid in _session_members(session):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _session_members(session) and time.monotonic() < deadline:
            time.sleep(0.2)
    return left


def _sweep(args: List[str], cwd: Path, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m mlpx -m ARGS`` in a session of its own, within TIMEOUT; every process it
    started (a local Ray instance's daemons and workers, submitit's jobs) must be gone after."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlpx", "-m", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        _end_session(process.pid, grace=0)
        stdout, stderr = process.communicate()
        pytest.fail(f"the sweep did not end within {TIMEOUT} s; its log ends with:\n{stderr[-4000:]}")
    left = _end_session(process.pid)
    print(f"sweep {' '.join(args[:2])}: {time.monotonic() - started:.1f} s")
    assert process.returncode == 0, stderr[-6000:]
    assert not left, f"processes of the sweep outlived it: {left}"
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _most_at_once(runs) -> int:
    """How many of the runs were open at the same time at most (MLflow's start and end times)."""
    events = sorted([(r.info.start_time, 1) for r in runs] + [(r.info.end_time, -1) for r in runs])
    open_runs = most = 0
    for _, change in events:  # an end sorts before a start at the same millisecond
        open_runs += change
        most = max(most, open_runs)
    return most


def _assert_one_parent_with_full_histories(workdir: Path, threads: int, epochs: int = 2) -> list:
    """One FINISHED parent, every other run a FINISHED child of it with every epoch's metrics,
    trained on ``threads`` BLAS threads, never more at a time than CORES // threads; nothing
    RUNNING. Returns the children."""
    client = MlflowClient(store_uri(workdir))
    experiment = client.get_experiment_by_name("mlpx")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    parents = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.info.run_id != parent.info.run_id]
    assert [r.data.tags.get("mlflow.parentRunId") for r in children] == [parent.info.run_id] * 3
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlpx.sweep.jobs"] == "3" and parent.data.tags["mlpx.sweep.failed"] == "0"
    assert sorted(r.data.params["optimizer.lr"] for r in children) == LEARNING_RATES
    for run in children:
        assert run.info.status == "FINISHED", run.data.tags.get("mlpx.error")
        for key in ("train_loss", "val_loss", "val_ce", "val_acc", "epoch_seconds", "blas_threads"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(1, epochs + 1)), (run.info.run_name, key)
        used = {m.value for m in client.get_metric_history(run.info.run_id, "blas_threads")}
        assert used == {float(threads)}, run.info.run_name
        assert "test_acc" in run.data.metrics
    assert len({r.data.tags["mlpx.output_dir"] for r in children}) == 3
    assert _most_at_once(children) * threads <= CORES
    return children


def test_sweep_on_a_local_ray_instance(workdir, engine_env):
    _sweep([*RAY_LOCAL, *SWEEP], cwd=workdir, env=engine_env)
    children = _assert_one_parent_with_full_histories(workdir, threads=1)
    # the BLAS started with the job's one Ray CPU, so `auto` had nothing above it to try
    assert {r.data.tags["mlpx.blas_threads"] for r in children} == {"1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_cluster(engine_env, tmp_path) -> Iterator[str]:
    """A running one-node Ray cluster on loopback (``ray start --head``); yields its address.
    Its workers are started by its own daemons, not by the sweep: they inherit nothing from it."""
    port = _free_port()
    log = tmp_path / "ray-start.log"  # a file, not a pipe: the daemons it leaves may hold a pipe open
    with open(log, "w") as output:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}",
                "--node-ip-address=127.0.0.1", f"--num-cpus={CORES}", "--include-dashboard=false",
                f"--ray-client-server-port={_free_port()}", "--disable-usage-stats",
            ],
            env=engine_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        assert process.wait(timeout=120) == 0, f"ray start failed:\n{log.read_text()}"
        yield f"127.0.0.1:{port}"
    finally:  # its daemons keep the session of the `ray start` we ran
        _end_session(process.pid, first_signal=signal.SIGTERM, grace=0)


def test_sweep_on_a_running_ray_cluster(workdir, engine_env, ray_cluster):
    """The parent run's id reaches jobs that a cluster's own workers run (no inherited environment)."""
    cluster = [arg.format(address=ray_cluster) for arg in RAY_CLUSTER]
    _sweep([*cluster, *SWEEP], cwd=workdir, env={**engine_env, **RAY_CLUSTER_ENV})
    children = _assert_one_parent_with_full_histories(workdir, threads=1)
    assert {r.data.tags["mlpx.blas_threads"] for r in children} == {"1"}


def test_sweep_through_submitit_local(workdir, engine_env):
    _sweep([*SUBMITIT_LOCAL, *SWEEP], cwd=workdir, env=engine_env)
    _assert_one_parent_with_full_histories(workdir, threads=1)
    folders = [f for f in workdir.glob("outputs/multirun/*/*/.submitit/*") if f.name.isdigit()]
    assert len(folders) == 3, folders  # a submitit job folder (named by its job id) per job
