"""The command line: `mlpx [hydra overrides]` trains; `mlpx plugins [--json]` lists plugins;
`mlpx check [--json] [NAME ...]` runs the plugin checks; `mlpx doctor [--json] NAME|FILE.py`
examines hand-written networks.

Plugins are loaded before Hydra composes the config, so each plugin's hyperparameter
dataclass is a config group option Hydra can validate.
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mlpx.builtins.early_stopping import EarlyStopping
from mlpx.builtins.progress import ProgressReporter
from mlpx.diagnostics.plots import warm_up as warm_up_plots
from mlpx.diagnostics.rules import render
from mlpx.errors import ConfigError, MlpxError, PluginError
from mlpx.plugin_files import DEFAULT_PLUGINS_DIR
from mlpx.plugins.config import store_configs, unknown_keys
from mlpx.plugins.manager import PROJECT_ROOT, PluginHost, load_plugins
from mlpx.runs.folder import register_resolvers
from mlpx.runs.network_run import UserNetwork, execute_network, prepare_network, user_network
from mlpx.runs.runner import ObjectiveCheck, check_run, chosen_components, execute, prepare
from mlpx.sweeps import callback as sweep
from mlpx.sweeps.search import reporter_for_this_job
from mlpx.tracking.helper import start_early
from mlpx.tracking.tracker import (
    MlflowTracker,
    config_hash,
    finished_run_with_hash,
    flatten,
    is_remote,
    offline_mode,
    probe_server,
)

#: the configs: conf/ at the top of a clone, or the copy a wheel ships inside the package (mlpx/conf)
CONF_DIR = next(
    (folder for folder in (PROJECT_ROOT / "conf", Path(__file__).resolve().parent / "conf")
     if (folder / "config.yaml").is_file()),
    PROJECT_ROOT / "conf",
)  # fmt: skip
log = logging.getLogger("mlpx")
_host: Optional[PluginHost] = None
register_resolvers()  # ${mlpx_uid:} in conf/config.yaml, here and in joblib workers


def plugin_host() -> PluginHost:
    """The process's plugins, loaded once (joblib workers load their own)."""
    global _host
    if _host is None:
        _host = load_plugins()
        store_configs(_host.registry)
    return _host


def main() -> None:
    try:
        _dispatch(sys.argv[1:])
    except MlpxError as exc:  # bad input found before Hydra runs (plugins, environment)
        print(f"mlpx: error: {exc}", file=sys.stderr)
        sys.exit(1)


def _dispatch(args: List[str]) -> None:
    if args[:1] in (["--version"], ["-V"]):
        from mlpx import __version__

        print(f"mlpx {__version__}")
        sys.exit(0)
    if args[:1] == ["plugins"]:
        sys.exit(plugins_command(args[1:]))
    if args[:1] == ["check"]:
        sys.exit(check_command(args[1:]))
    if args[:1] == ["sync"]:  # send what a dead tracking server did not get (mlpx.tracking.spool)
        from mlpx.tracking.sync import sync_command

        sys.exit(sync_command(args[1:]))
    if args[:1] == ["doctor"]:
        sys.exit(doctor_command(args[1:]))
    if not (CONF_DIR / "config.yaml").is_file():
        print(
            f"mlpx: no configs at {CONF_DIR}: this installation of mlpx is incomplete; "
            "reinstall it (`pip install .` from a clone ships conf/ inside the package)",
            file=sys.stderr,
        )
        sys.exit(2)
    start_early(args)  # MLflow's import overlaps Hydra, plugins, data and checks
    host = plugin_host()
    for failure in host.failures:
        print(f"mlpx: warning: {failure}", file=sys.stderr)
    _expose_hydra_plugins()
    _hydra_app()
    if sweep.failed_sweeps or sweep.failed_jobs:
        for message in sweep.failed_sweeps or sweep.failed_jobs:
            print(f"mlpx: sweep failed: {message}", file=sys.stderr)
        sys.exit(1)


def _expose_hydra_plugins() -> None:
    """Let Hydra's plugin scan see the sweeper in plugins/hydra_plugins (``hydra/sweeper=mlpx_optuna``).

    An editable install maps that folder through an import hook, which the scan (pkgutil) cannot
    list; adding the folder to the namespace's path makes it a plain directory for the scan.
    """
    import hydra_plugins

    folder = str(DEFAULT_PLUGINS_DIR / "hydra_plugins")
    if Path(folder).is_dir() and folder not in list(hydra_plugins.__path__):
        hydra_plugins.__path__.append(folder)


def plugins_command(args: List[str]) -> int:
    """Print every registered component (kind, name, source, version) and every load failure."""
    parser = argparse.ArgumentParser(
        prog="mlpx plugins",
        description="List every registered plugin component (kind, name, version, source: built-in, a "
        "plugins/ file or a package's entry point) and every plugin that failed to load, with why.",
        epilog="Exit status: 0, or 1 when a plugin failed to load. Plugin files are read from "
        "MLPX_PLUGINS_DIR (default: the project's plugins/); MLPX_LOAD_PLUGINS=a,b loads only those.",
    )
    parser.add_argument("--json", action="store_true", help="print the components and failures as JSON")
    options = parser.parse_args(args)
    host = plugin_host()
    components = [
        {"kind": c.kind, "name": c.name, "plugin": c.plugin, "source": c.source, "version": c.version}
        for c in host.registry.components()
    ]
    failures = [{"plugin": f.plugin, "source": f.source, "error": f.error} for f in host.failures]
    if options.json:
        print(json.dumps({"components": components, "failures": failures}, indent=2))
    else:
        for c in components:
            print(f"{c['kind']:<12} {c['name']:<16} {c['version']:<10} {c['source']}")
        for f in failures:
            print(f"FAILED       {f['plugin']:<16} {f['source']}: {f['error']}", file=sys.stderr)
    return 1 if failures else 0


def check_command(args: List[str]) -> int:
    """Run the plugin checks on every registered plugin, or on those named; print the reports.

    Exit 0 when every check passes, 1 when any fails (or, checking all, a plugin failed to
    load), 2 on a usage error.
    """
    from mlpx.checks import CHECKED_KINDS, check_component

    parser = argparse.ArgumentParser(
        prog="mlpx check",
        description="Check plugins before they train: each activation, loss, initializer and optimizer "
        "against its contract (gradients by central differences, shapes, dtypes, extreme inputs, "
        "reference trajectories), and report every failure with the numbers.",
        epilog="Exit status: 0 when every check passes, 1 when one fails (or, checking all, a plugin "
        "failed to load), 2 on a usage error. Hand-written networks: `mlpx doctor NAME`.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="plugins to check (default: all)")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    options = parser.parse_args(args)
    names = options.names
    usage = parser.format_usage().strip()
    host = plugin_host()
    registered = host.registry.components()
    unknown = [n for n in names if not any(c.name == n for c in registered)]
    if unknown:
        available = ", ".join(sorted({c.name for c in registered if c.kind in CHECKED_KINDS}))
        print(f"mlpx check: no plugin named {', '.join(unknown)}. Available: {available}", file=sys.stderr)
        print(usage, file=sys.stderr)
        return 2
    chosen = [c for c in registered if c.kind in CHECKED_KINDS and (not names or c.name in names)]
    for c in registered:
        if c.kind not in CHECKED_KINDS and c.name in names:
            why = "use `mlpx doctor NAME`" if c.kind == "network" else "datasets are not checked"
            print(f"mlpx check: {c.kind} '{c.name}' skipped: {why}", file=sys.stderr)
    reports = [check_component(c) for c in chosen]
    failures = [] if names else host.failures
    if options.json:
        listing = {
            "reports": [r.as_dict() for r in reports],
            "failures": [{"plugin": f.plugin, "source": f.source, "error": f.error} for f in failures],
        }
        print(json.dumps(listing, indent=2))
    else:
        for component, report in zip(chosen, reports, strict=True):
            verdict = "ok  " if report.ok else "FAIL"
            print(f"{verdict}  {component.kind:<12} {component.name:<16} {component.source}")
            if not report.ok:
                details = str(report).splitlines()[1:]  # the first line repeats the label
                print("\n".join("    " + line for line in details if not line.lstrip().startswith("passed:")))
        for f in failures:
            print(f"FAILED TO LOAD  {f.plugin:<16} {f.source}: {f.error}", file=sys.stderr)
        failed = sum(not r.ok for r in reports)
        print(f"{len(reports)} plugins checked: {len(reports) - failed} passed, {failed} failed")
    return 1 if failures or not all(r.ok for r in reports) else 0


DOCTOR_USAGE = """usage: mlpx doctor [--json] [--seed N] TARGET [TARGET ...]

Examine hand-written networks (register_networks plugins) with mlpx.doctor.examine.
TARGET is a network's name, a plugin file that registers networks (path/to/net.py: each of
them), or one network of it (path/to/net.py:NAME).
  --json    the reports as JSON on stdout
  --seed N  reseed NumPy's and Python's global generators before every call of the network's
            code (as Network(seed=N); for dropout drawn from np.random)
Exit 0 when no report has errors, 1 when one has (or a plugin file failed to load), 2 on a usage
error or an unknown network."""


def doctor_command(args: List[str]) -> int:
    """Examine the networks the targets name; print each report (or all as JSON)."""
    from mlpx.plugins.networks import find_networks

    options, targets, seed = set(), [], None
    rest = iter(args)
    for arg in rest:
        if arg == "--seed":
            seed = next(rest, None)
            if seed is None or not seed.lstrip("-").isdigit():
                return _usage_error(f"--seed needs an integer, got {seed!r}")
            seed = int(seed)
        elif arg in ("--json", "-h", "--help"):
            options.add(arg)
        elif arg.startswith("-"):
            return _usage_error(f"unknown option {arg}")
        else:
            targets.append(arg)
    if options & {"-h", "--help"}:
        print(DOCTOR_USAGE)
        return 0
    if not targets:
        return _usage_error("name a network or a plugin file")
    lookup = find_networks(targets)
    if lookup.unknown:
        available = ", ".join(lookup.available) or "none"
        return _usage_error(f"no network {'; '.join(lookup.unknown)}. Available networks: {available}")
    reports, broken = [], [str(f) for f in lookup.failures]
    for component in lookup.networks:
        try:
            overrides = {} if seed is None else {"seed": seed}
            reports.append(component.network().examine(name=component.name, **overrides))
        except MlpxError as exc:  # the plugin's Network is unusable: say so, examine the others
            broken.append(f"network '{component.name}' from {component.source}: {exc}")
    if "--json" in options:
        print(json.dumps({"reports": [r.as_dict() for r in reports], "failures": broken}, indent=2))
    else:
        print("\n\n".join(str(report) for report in reports))
    for message in broken:
        print(f"mlpx doctor: {message}", file=sys.stderr)
    return 1 if broken or not all(report.ok for report in reports) else 0


def _usage_error(message: str) -> int:
    print(f"mlpx doctor: {message}\n\n{DOCTOR_USAGE}", file=sys.stderr)
    return 2


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_app(cfg: DictConfig) -> Optional[float]:
    hydra_cfg = HydraConfig.get()
    run_name = cfg.tracking.run_name or hydra_cfg.job.override_dirname or None
    try:
        return train(cfg, plugin_host(), Path(hydra_cfg.runtime.output_dir), run_name)
    except Exception as exc:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            # the run is FAILED in MLflow; the sweep goes on and its end lists the failures
            message = f"job {hydra_cfg.job.num} ({hydra_cfg.job.override_dirname}) failed: {_describe(exc)}"
            log.error("%s", message)
            sweep.note_failed_job(Path(hydra_cfg.runtime.output_dir), message)
            return None
        if isinstance(exc, MlpxError):
            log.error("%s", exc)
            raise SystemExit(1) from None
        raise


def train(cfg: DictConfig, host: PluginHost, output_dir: Path, run_name: Optional[str]) -> float:
    """Train one run from a composed config, tracked in MLflow; return its objective.

    The objective is ``tracking.best_metric`` (default ``val_ce``), a validation metric at the
    epoch whose weights the run ends with (the restored one, else the last): what a Hydra
    sweeper minimises or maximises, never a test-set number."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(
            "unknown config keys (a '+' adds a key the schema does not have: drop it and use an existing "
            "key; `python -m mlpx --cfg job` lists them): " + "; ".join(unknown)
        )
    components = chosen_components(cfg, host)
    user = user_network(components["network"])  # None: mlpx's own MLP (network=mlp)
    if user is not None:
        log.info("%s; unused config groups: %s", user.describe(), ", ".join(user.unused_groups))
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    digest = config_hash(resolved)
    if cfg.resume and _server_for_resume(cfg.tracking):
        done = finished_run_with_hash(cfg.tracking.uri, cfg.tracking.experiment, digest)
        if done is not None:
            threads = _threads_of(cfg.tracking.uri, done)
            said = f"already FINISHED as MLflow run {done.info.run_id} ({threads})"
            log.info("resume: skipped, %s", said)
            print(f"skipped (resume): {said}", flush=True)
            return finished_objective(cfg.tracking.uri, done, cfg.tracking.best_metric)
    tracker = MlflowTracker(
        cfg.tracking.uri,
        cfg.tracking.experiment,
        cfg.tracking.artifact_location,
        cfg.tracking.plots,
        log_model=cfg.tracking.log_model,
        register_model=cfg.tracking.register_model,
    )
    tags = {**_run_tags(cfg, components, output_dir, digest), **(user.tags() if user else {})}
    tracker.open(flatten(resolved), tags, run_name)
    try:
        tracker.log_text(OmegaConf.to_yaml(resolved), "config.yaml")
        observers = [tracker, ProgressReporter(), *_optional_observers(cfg)]
        if user is None:
            run = prepare(cfg, host, output_dir)
        else:  # the doctor first: a broken network stops before the data is loaded
            doctor = _doctor_gate(user, tracker) if cfg.checks.enabled else "skipped: checks.enabled=false"
            run = prepare_network(cfg, host, output_dir, user)
            run.tags["mlpx.doctor"] = doctor
        if cfg.checks.enabled and user is None:
            checks = check_run(run)
            tracker.log_metrics({"gradcheck_rel_err": checks.network.error}, step=0)
            if not checks.ok:
                raise PluginError(checks.failure_message())
            log.info(
                "plugin checks passed; network gradient check: worst relative error %.2g",
                checks.network.error,
            )
        if cfg.tracking.plots:  # while the main process waits for the helper's MLflow import
            tracker.when_idle(warm_up_plots)
        # Training does not wait for the helper's MLflow import: its first sync is at the end of
        # the first epoch, where a store or request MLflow refused stops the run
        tracker.before_training()
    except BaseException as exc:
        tracker.close(exc)
        raise
    try:
        for observer in observers:
            host.pm.register(observer)
        result = (execute if user is None else execute_network)(run, host.pm.hook)
    except BaseException as exc:  # a plugin's on_run_end raised before the tracker's (trylast) ran
        tracker.close(exc)
        raise
    finally:
        for observer in observers:
            if host.pm.is_registered(observer):
                host.pm.unregister(observer)
    test = result.test
    print(render(result.diagnosis, result.history).replace("# Diagnosis\n\n", "Diagnosis: "), flush=True)
    print(
        f"test_acc {test['test_acc']:.4f}  test_ce {test['test_ce']:.4f}  "
        f"({len(result.history)} epochs, {result.seconds:.1f} s)\n{tracker.where()}",
        flush=True,
    )
    return result.objective(cfg.tracking.best_metric)


def _server_for_resume(tracking: DictConfig) -> bool:
    """Whether ``resume=true`` can look for finished runs: not offline, nor with a server that does
    not answer when offline mode may take over (MLflow's retries would take minutes)."""
    mode = offline_mode(tracking.offline)
    if mode == "false":
        if is_remote(tracking.uri):
            probe_server(tracking.uri)  # a dead server: its clear error now, not minutes of retries
        return True
    if mode == "auto" and is_remote(tracking.uri):
        try:
            probe_server(tracking.uri)
            return True
        except MlpxError:
            pass
    elif mode == "auto":
        return True
    log.warning("resume=true: no finished run can be looked up offline (tracking.offline=%s); training", mode)
    return False


def _threads_of(uri: str, run) -> str:
    """How many BLAS threads a finished run trained with: results are bit-identical only at the same count."""
    from mlflow import MlflowClient

    history = MlflowClient(uri).get_metric_history(run.info.run_id, "blas_threads")
    counts = sorted({int(m.value) for m in history})
    if not counts:
        return f"trainer.blas_threads={run.data.tags.get('mlpx.blas_threads', '?')}"
    return f"trained with {'/'.join(map(str, counts))} BLAS thread{'s' if counts != [1] else ''} per epoch"


def finished_objective(uri: str, run, metric: str) -> float:
    """A FINISHED run's objective, as ``RunResult.objective`` returned it when it trained."""
    from mlflow import MlflowClient

    history = {m.step: m.value for m in MlflowClient(uri).get_metric_history(run.info.run_id, metric)}
    restored = run.data.tags.get("mlpx.restored_epoch")
    step = int(restored) if restored else max(history, default=None)
    if step not in history:
        raise ConfigError(f"resume: run {run.info.run_id} logged no {metric} (tracking.best_metric={metric})")
    return history[step]


def _doctor_gate(user: UserNetwork, tracker: MlflowTracker) -> str:
    """Examine a user network before training (``mlpx doctor``): log the report as ``doctor.txt``
    and ``doctor.json`` and the metric ``doctor_errors``; stop the run when it has errors."""
    report = user.network.examine(name=user.name)
    tracker.log_text(str(report), "doctor.txt")
    tracker.log_text(report.to_json(), "doctor.json")
    tracker.log_metrics(
        {"doctor_errors": len(report.errors), "doctor_warnings": len(report.warnings)}, step=0
    )
    if not report.ok:
        raise PluginError(
            f"the run did not start: mlpx doctor found errors in {user.describe()} "
            f"(`mlpx doctor {user.name}` shows the same report)\n{report}\n"
            "Fix the code, or train it as it is with checks.enabled=false."
        )
    log.info("mlpx doctor: network '%s' passed (%d warnings)", user.name, len(report.warnings))
    return f"passed ({len(report.warnings)} warnings)"


def _run_tags(cfg: DictConfig, components, output_dir: Path, digest: str) -> dict:
    """The run's tags: seed, output folder, config hash, BLAS threads, plugins (git: the helper)."""
    tags = {
        "mlpx.seed": str(cfg.seed),
        "mlpx.output_dir": str(output_dir),
        "mlpx.config_hash": digest,
        "mlpx.blas_threads": str(blas_threads()),
    }
    for kind, component in components.items():
        tags[f"mlpx.plugin.{kind}"] = component.name
        tags[f"mlpx.plugin.{kind}.version"] = component.version
        tags[f"mlpx.plugin.{kind}.source"] = component.source
    if components["network"].name == "mlp" and not cfg.model.hidden:
        log.info("model.hidden=[]: a linear model (softmax regression, one weight matrix); activation unused")
        tags["mlpx.model"] = "linear (softmax regression)"
        tags["mlpx.unused_groups"] = "activation"
    return tags


def _optional_observers(cfg: DictConfig) -> list:
    """Lifecycle plugins the config switches on (early stopping), and an Optuna trial's reporter."""
    observers = [ObjectiveCheck(cfg.tracking.best_metric)]
    reporter = reporter_for_this_job()
    if reporter is not None:
        observers.append(reporter)
    stopping = cfg.trainer.early_stopping
    if stopping.enabled:
        try:
            observers.append(
                EarlyStopping(stopping.monitor, stopping.patience, stopping.min_delta, stopping.restore_best)
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return observers


def blas_threads() -> int:
    """Threads of the BLAS under NumPy (results are deterministic for a fixed count)."""
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=1)


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MlpxError) else f"{type(exc).__name__}: {exc}"
