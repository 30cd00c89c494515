"""Executing a sweep's runs, each in a process of its own, on this machine or on a SLURM cluster.

Both executors run one job function, `run_job`: in a worker process it resolves the run's raw
config exactly as `clbench run --config` would, runs it into the store (unless the store already
holds it completed: a requeued job does not run twice), and writes a record of the attempt
beside the run's log (`<folder>/<key>.json`), which says why a job failed when it failed before
the store had the run (data missing on a node, a worker killed while it started).

- `local`: `workers` processes at a time (`python -m clbench.sweep.executors`, the run's spec on
  stdin, its output in `<folder>/<key>.log`), each with `threads` intra-op threads (default:
  the cores divided among the workers), so that a crash or an OOM kill ends one run only.
- `slurm`: a submitit `AutoExecutor` on the SLURM cluster, every run a task of one job array
  (`array_parallelism` at a time), with the sweep file's resources and partition; submitit
  writes each task's log under `<folder>/%j/` and requeues a task that is preempted or times
  out (`SweepJob.checkpoint`: the run starts over; the interrupted attempt is stored as failed
  and a completed attempt wins in the status). Tests run the same path through submitit's
  local executor (`SUBMITIT_CLUSTER = "local"`).

While the sweep runs, `LiveTable` shows the counts (queued / running / completed / failed) and
the runs in flight, redrawn in place on a terminal, as one line per event elsewhere.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from clbench.errors import UserError, report
from clbench.names import closest
from clbench.sweep.plan import ExecutorSpec, RunSpec, Sweep, load_sweep
from clbench.sweep.status import (
    COMPLETED,
    FAILED,
    QUEUED,
    RUNNING,
    StoreMatcher,
    counts,
    counts_line,
    open_store_for_reading,
    read_record,
)

# submitit's cluster for the `slurm` executor; the tests set "local" (submitit's local
# executor: the same executor object, job function and monitoring, without SLURM)
SUBMITIT_CLUSTER = "slurm"
# options of our own in a slurm executor mapping (besides kind and folder)
SLURM_OWN = ("max_num_timeout", "python")
POLL_S = 0.5


# --------------------------------------------------------------------------- the job


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_record(folder: Path, key: str, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.json.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1, default=str))
    tmp.replace(folder / f"{key}.json")


def _submitit_log() -> str | None:
    """This task's log file when submitit runs it (None otherwise)."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    try:
        import submitit

        return str(submitit.JobEnvironment().paths.stdout)
    except Exception:  # noqa: BLE001 - only a pointer for the record
        return None


def _error_text(err: BaseException) -> str:
    if isinstance(err, KeyboardInterrupt):
        return f"interrupted ({err})" if str(err) else "interrupted"
    return f"{type(err).__name__}: {err}".strip()


def run_job(spec: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Run one expanded run of a sweep (in a worker process) and record the attempt.

    `ctx`: `db` (URL), `data_root`, `manifests` (folders), `records` (folder for the record),
    `threads` (intra-op threads, or None), `log` (this run's log file, if known)."""
    threads = ctx.get("threads")
    if threads:  # before torch is imported, so that its pools are sized once
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    run = RunSpec.from_json(spec)
    records = Path(ctx["records"])
    record = {"key": run.key, "label": run.label(), "host": socket.gethostname(),
              "pid": os.getpid(), "started_at": _now(), "log": ctx.get("log") or _submitit_log()}
    try:
        outcome = _run(run, ctx)
    except BaseException as err:  # noqa: BLE001 - the record says why, then it propagates
        hint = getattr(err, "hint", None)
        write_record(records, run.key, {**record, "status": FAILED, "error": _error_text(err),
                                        **({"hint": hint} if hint else {}),
                                        "finished_at": _now()})
        raise
    write_record(records, run.key, {**record, **outcome, "finished_at": _now()})
    return outcome


def _run(run: RunSpec, ctx: dict[str, Any]) -> dict[str, Any]:
    import torch

    if ctx.get("threads"):
        torch.set_num_threads(int(ctx["threads"]))
    from clbench.run import checkpoints
    from clbench.run.runner import run as run_config
    from clbench.run.settings import resolve_for_scenario
    from clbench.scenarios.manifests import load_scenario_manifest, use_manifest_dirs
    from clbench.store import LazyStore

    if ctx.get("manifests") is not None:
        use_manifest_dirs(ctx["manifests"])
    url = ctx["db"]
    print(f"sweep run {run.key}: {run.label()} on {run.scenario}, model {run.model}", flush=True)
    store = open_store_for_reading(url)
    if store is not None:
        try:
            state = StoreMatcher(store).states([run])[run.key]
        finally:
            store.close()
        if state.status == COMPLETED:  # e.g. a requeued job whose first attempt finished
            print(f"already completed as run {state.run_id}: not run again", flush=True)
            return {"status": "skipped", "run_id": state.run_id}
        if state.status == FAILED:
            result = _resume(state.run_id, url, ctx)
            if result is not None:
                return _outcome(run, url, result)
    config = resolve_for_scenario(copy.deepcopy(run.raw), load_scenario_manifest(
        str(run.raw["scenario"])))
    result = run_config(config, LazyStore(url), data_root=ctx.get("data_root"), progress=False,
                        checkpoints=checkpoints.policy(url))
    return _outcome(run, url, result)


def _resume(run_id: str, url: str, ctx: dict[str, Any]):
    """Continue the failed attempt `run_id` from its checkpoint (a killed or preempted job, a
    crash); None, with the reason printed, when it cannot be resumed and must start again.

    Every refusal of `clbench run --resume` applies (`resume.plan`), none is forced: a run
    whose strategy plugin does not declare how it resumes, or whose code or data changed, is
    started again from its first session as a new run rather than resumed to numbers that an
    uninterrupted run might not give."""
    from clbench.run import resume
    from clbench.store import Store

    store = Store(url, create=False)
    try:
        planned = resume.plan(run_id, store, data_root=ctx.get("data_root"))
    except UserError as err:
        print(f"the failed attempt {run_id[:12]} is not resumed: {err}; starting the run "
              "again from its first session (a new run; the failed one stays as it is)",
              flush=True)
        store.close()
        return None
    print(f"resuming the failed attempt {run_id[:12]} after session {planned.after_session}",
          flush=True)
    try:
        return resume.take_up(planned, store, progress=False)
    finally:
        store.close()


def _outcome(run: RunSpec, url: str, result) -> dict[str, Any]:
    from clbench.run.report import format_summary
    from clbench.store import Store

    print(format_summary(result.run_id, result.summary, result.total_time_s), flush=True)
    with Store(url, create=False) as store:  # the store must recognise it as this run
        stored = store.get_run(result.run_id)
    differs = {k: (v, stored.get(k)) for k, v in run.identity.items() if stored.get(k) != v}
    if differs:
        print(f"warning: run {result.run_id} was stored with another identity than the sweep "
              f"computed ({differs}); `clbench sweep` will not recognise it as done",
              file=sys.stderr, flush=True)
    return {"status": COMPLETED, "run_id": result.run_id, "time_s": result.total_time_s,
            **({"identity_differs": {k: list(v) for k, v in differs.items()}}
               if differs else {})}


class SweepJob:
    """The job submitit runs: `run_job`, requeued on preemption or timeout (submitit calls
    `checkpoint` on its signal; the requeued job resumes the run from its last session
    checkpoint, `_resume`)."""

    def __call__(self, spec: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
        return run_job(spec, ctx)

    def checkpoint(self, spec: dict[str, Any], ctx: dict[str, Any]):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, spec, ctx)


def worker_main() -> int:
    """`python -m clbench.sweep.executors`: run the job read from stdin ({spec, ctx})."""
    payload = json.loads(sys.stdin.read())
    try:
        run_job(payload["spec"], payload["ctx"])
    except UserError as err:
        return report(err)
    except KeyboardInterrupt:
        print("interrupted (the run in progress is marked failed)", file=sys.stderr)
        return 130
    except BaseException:  # noqa: BLE001 - a worker reports everything and exits non-zero
        traceback.print_exc()
        return 1
    return 0


# --------------------------------------------------------------------------- slurm options


def slurm_options(path: Path, data: dict[str, Any], name: str) -> tuple[dict, dict]:
    """The sweep file's slurm executor keys as submitit `AutoExecutor` parameters (generic ones
    as they are, SLURM ones with the `slurm_` prefix, which the file may leave out), and our
    own (`max_num_timeout`, `python`). A key submitit does not know is refused, naming the
    closest known ones."""
    from submitit import AutoExecutor
    from submitit.slurm.slurm import SlurmExecutor

    generic = sorted(AutoExecutor._valid_parameters())
    specific = sorted(set(SlurmExecutor._valid_parameters()) - set(generic))
    known = ["kind", "folder", *SLURM_OWN, *generic, *specific]
    options: dict[str, Any] = {"name": f"clbench-{name}"}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        bare = key.removeprefix("slurm_")
        if bare in SLURM_OWN:
            extra[bare] = value
        elif key in generic:
            options[key] = value
        elif bare in specific or bare in generic:
            options[f"slurm_{bare}"] = value
        else:
            near = closest(bare, known)
            did = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
            raise UserError(
                f"sweep file {path}: executor.{key}: not a SLURM option that submitit knows{did}",
                hint=f"the slurm executor takes kind, folder, {', '.join(SLURM_OWN)}, submitit's "
                     f"{', '.join(generic)}, and the SLURM options {', '.join(specific)} (an "
                     "sbatch flag without an option: additional_parameters: {flag: value})")
    if "timeout_min" not in options and "slurm_time" not in options:
        raise UserError(f"sweep file {path}: executor: no timeout_min for the slurm executor",
                        hint="give each run's time limit in minutes, e.g. `timeout_min: 240` "
                             "(submitit's default would end every run after 5 minutes)")
    if "max_num_timeout" in extra and (isinstance(extra["max_num_timeout"], bool) or not
                                       isinstance(extra["max_num_timeout"], int)
                                       or extra["max_num_timeout"] < 0):
        raise UserError(f"sweep file {path}: executor.max_num_timeout: expected a whole number "
                        f">= 0, got {extra['max_num_timeout']!r}",
                        hint="how many times a run that times out is requeued")
    return options, extra


def check_executor(sweep: Sweep) -> None:
    """A slurm executor's options, converted for submitit and checked by it (no file
    written, no SLURM needed)."""
    spec = sweep.executor
    if spec.kind != "slurm":
        return
    options, extra = slurm_options(sweep.path, spec.raw, sweep.name)
    spec.options = options
    spec.max_num_timeout = extra.get("max_num_timeout", spec.max_num_timeout)
    spec.python = extra.get("python", spec.python)
    make_slurm_executor(spec, render_only=True, where=str(sweep.path))


def load(path: str | Path) -> Sweep:
    """`clbench.sweep.plan.load_sweep` and the executor's options: every check on a sweep file."""
    sweep = load_sweep(path)
    check_executor(sweep)
    return sweep


def _submitit_folder(spec: ExecutorSpec) -> Path:
    return spec.folder if "%" in str(spec.folder) else spec.folder / "%j"


def make_slurm_executor(spec: ExecutorSpec, *, render_only: bool = False, where: str = "",
                        cluster: str | None = None):
    """The submitit AutoExecutor of a slurm sweep, its parameters set (submitit checks them).
    `render_only`: built without SLURM on this machine (to check the options and print the
    sbatch script; never to submit). Creates no file."""
    import submitit
    from submitit.slurm.slurm import SlurmExecutor

    cluster = cluster or SUBMITIT_CLUSTER
    ctor = {"slurm_max_num_timeout": spec.max_num_timeout,
            **({"slurm_python": spec.python} if spec.python else {})}
    folder = _submitit_folder(spec)
    if render_only:
        from unittest import mock

        # SlurmExecutor refuses to be built where `srun` is missing; rendering needs no SLURM
        with mock.patch.object(SlurmExecutor, "affinity", classmethod(lambda cls: 2)):
            executor = submitit.AutoExecutor(folder, cluster="slurm", **ctor)
    else:
        executor = submitit.AutoExecutor(folder, cluster=cluster, **ctor)
    try:
        executor.update_parameters(**spec.options)
    except (AssertionError, ValueError, NameError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"sweep file {where}: executor: submitit refuses the options: {first}",
                        hint="see docs/sweeps.md for a complete slurm executor") from None
    return executor


def sbatch_script(spec: ExecutorSpec, n_runs: int) -> str:
    """The sbatch script submitit would submit for `n_runs` runs (one job array when n > 1),
    rendered without submitting anything."""
    inner = make_slurm_executor(spec, render_only=True)._executor
    if n_runs > 1:  # what SlurmExecutor sets for an array submission
        inner.parameters = {**inner.parameters, "map_count": n_runs}
    return inner._make_submission_file_text(inner._submitit_command_str, "dry-run")


def check_slurm_available() -> None:
    if SUBMITIT_CLUSTER == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        missing = [c for c in ("sbatch", "srun") if not shutil.which(c)]
        raise UserError(f"the slurm executor submits with SLURM's sbatch and srun; not on "
                        f"PATH here: {', '.join(missing)}",
                        hint="run `clbench sweep` on the cluster's login node; `clbench sweep "
                             "FILE --dry-run` prints the sbatch script it would submit")


# --------------------------------------------------------------------------- live table


class LiveTable:
    """The sweep's counts and runs in flight: redrawn in place on a terminal (ANSI cursor
    moves), else one line per event (started, completed, failed) with the counts."""

    def __init__(self, runs: list[RunSpec], done_before: int, stream: TextIO | None = None,
                 tty: bool | None = None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.runs = {r.key: r for r in runs}
        self.status: dict[str, str] = {r.key: QUEUED for r in runs}
        self.done_before = done_before
        self.since: dict[str, float] = {}
        self.start = time.monotonic()
        self._drawn = 0
        self._shown: list[str] = []

    def numbers(self) -> dict[str, int]:
        out = counts(self.status)
        out[COMPLETED] += self.done_before
        return out

    def _clock(self) -> str:
        seconds = int(time.monotonic() - self.start)
        return f"[{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}]"

    def _block(self) -> list[str]:
        lines = [f"{self._clock()} {counts_line(self.numbers())}"]
        running = [k for k, s in self.status.items() if s == RUNNING]
        for key in running[:8]:
            elapsed = int(time.monotonic() - self.since.get(key, time.monotonic()))
            run = self.runs[key]
            lines.append(f"  running #{run.index + 1} {run.label()} ({elapsed // 60}:"
                         f"{elapsed % 60:02d})")
        if len(running) > 8:
            lines.append(f"  ... and {len(running) - 8} more")
        return lines

    def _erase(self) -> None:
        if self.tty and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def refresh(self) -> None:
        if not self.tty:
            return
        block = self._block()
        if self._drawn and block == self._shown:
            return  # nothing changed since the last draw
        self._erase()
        self.stream.write("\n".join(block) + "\n")
        self.stream.flush()
        self._drawn, self._shown = len(block), block

    def event(self, text: str) -> None:
        self._erase()
        suffix = "" if self.tty else f"  ({counts_line(self.numbers())})"
        self.stream.write(f"{self._clock()} {text}{suffix}\n")
        self.stream.flush()
        self.refresh()

    def set(self, key: str, status: str, note: str = "") -> None:
        if self.status.get(key) == status:
            return
        self.status[key] = status
        run = self.runs[key]
        if status == RUNNING:
            self.since[key] = time.monotonic()
            if not self.tty:
                self.event(f"started #{run.index + 1} {run.label()}{note}")
            else:
                self.refresh()
        elif status in (COMPLETED, FAILED):
            self.event(f"{status} #{run.index + 1} {run.label()}{note}")

    def close(self) -> None:
        self._erase()
        self.stream.write(f"{self._clock()} {counts_line(self.numbers())}\n")
        self.stream.flush()


def _outcome_note(record: dict[str, Any] | None, error: str | None, log: str | None) -> str:
    if error:
        return f": {error.strip().splitlines()[0]}" + (f" (log {log})" if log else "")
    if record and record.get("status") == "skipped":
        return f" (already completed as run {str(record.get('run_id'))[:12]})"
    if record and record.get("run_id"):
        time_s = record.get("time_s")
        return f" (run {record['run_id'][:12]}" + (f", {time_s:.0f} s)" if time_s else ")")
    return ""


# --------------------------------------------------------------------------- local


def local_threads(spec: ExecutorSpec) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    return spec.threads or max(1, cores // spec.workers)


def _exit_error(code: int, log: Path) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else \
            str(-code)
        why = " (out of memory?)" if -code == signal.SIGKILL else ""
        text = f"worker killed by {name}{why}"
    else:
        text = f"worker exited with status {code}"
    try:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        tail = []
    return text + (f"; last log line: {tail[-1].strip()}" if tail else "")


def run_local(spec: ExecutorSpec, runs: list[RunSpec], ctx: dict[str, Any],
              live: LiveTable) -> dict[str, str]:
    """`workers` worker processes at a time until every run has ended; returns key -> status.
    Ctrl-C (or SIGTERM) stops the workers (each marks its run failed) and re-raises."""
    records = spec.records()
    records.mkdir(parents=True, exist_ok=True)
    threads = local_threads(spec)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending = deque(runs)
    active: dict[str, tuple[subprocess.Popen, Path]] = {}
    ended: dict[str, str] = {}

    def start(run: RunSpec) -> None:
        log = records / f"{run.key}.log"
        (records / f"{run.key}.json").unlink(missing_ok=True)  # the last attempt's record
        with open(log, "a") as out:
            out.write(f"=== {_now()} clbench sweep: {run.label()} ===\n")
            out.flush()
            proc = subprocess.Popen(
                [sys.executable, "-m", "clbench.sweep.executors"], stdin=subprocess.PIPE,
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        job_ctx = {**ctx, "records": str(records), "threads": threads, "log": str(log)}
        proc.stdin.write(json.dumps({"spec": run.to_json(), "ctx": job_ctx}).encode())
        proc.stdin.close()
        active[run.key] = (proc, log)
        live.set(run.key, RUNNING)

    def finish(key: str, code: int) -> None:
        proc, log = active.pop(key)
        record = read_record(records, key)  # written by this attempt (start() removed older)
        if code == 0:
            ended[key] = COMPLETED
            live.set(key, COMPLETED, _outcome_note(record, None, None))
            return
        error = record.get("error") if record and record.get("status") == FAILED else None
        if error is None:  # the worker could not say why (killed): say it for it
            error = _exit_error(code, log)
            run = live.runs[key]
            write_record(records, key, {"key": key, "label": run.label(), "status": FAILED,
                                        "error": error, "log": str(log),
                                        "finished_at": _now()})
        ended[key] = FAILED
        live.set(key, FAILED, _outcome_note(None, error, str(log)))

    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop the workers as Ctrl-C does
    try:
        while pending or active:
            while pending and len(active) < spec.workers:
                start(pending.popleft())
            for key, (proc, _) in list(active.items()):
                code = proc.poll()
                if code is not None:
                    finish(key, code)
            live.refresh()
            time.sleep(POLL_S)
    except BaseException:
        for proc, _ in active.values():  # each worker's runner marks its run failed
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        for proc, _ in active.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return ended


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"terminated by signal {signum}")


# --------------------------------------------------------------------------- slurm


def run_submitit(spec: ExecutorSpec, runs: list[RunSpec], ctx: dict[str, Any],
                 live: LiveTable | None, *, wait: bool = True,
                 stream: TextIO | None = None) -> dict[str, str]:
    """Submit the runs as one job array (one task per run) and, with `wait`, follow them to
    the end; returns key -> status (`queued` for jobs left running with `wait=False`)."""
    stream = stream or sys.stdout
    records = spec.records()
    records.mkdir(parents=True, exist_ok=True)
    executor = make_slurm_executor(spec)
    threads = spec.options.get("cpus_per_task") or spec.options.get("slurm_cpus_per_task")
    job_ctx = {**ctx, "records": str(records.absolute()), "threads": threads}
    for run in runs:  # the last attempts' records
        (records / f"{run.key}.json").unlink(missing_ok=True)
    jobs = executor.map_array(SweepJob(), [r.to_json() for r in runs], [job_ctx] * len(runs))
    ids = sorted({str(j.job_id).split("_")[0] for j in jobs})
    what = f"job array {ids[0]}" if len(jobs) > 1 and len(ids) == 1 else \
        f"job(s) {', '.join(ids)}"
    stream.write(f"submitted {len(jobs)} run(s) as {what} ({SUBMITIT_CLUSTER}); logs under "
                 f"{executor.folder}\n")
    stream.flush()
    if not wait:
        return {r.key: QUEUED for r in runs}
    ended: dict[str, str] = {}
    try:
        while len(ended) < len(jobs):
            for run, job in zip(runs, jobs):
                if run.key in ended:
                    continue
                if job.done():
                    ended[run.key] = _finish_job(run, job, records, live)
                elif live is not None:
                    state = str(job.state).upper()
                    live.set(run.key, RUNNING if state.startswith(("RUNNING", "COMPLETING"))
                             else QUEUED)
            if live is not None:
                live.refresh()
            time.sleep(POLL_S if SUBMITIT_CLUSTER == "local" else 10)
    except KeyboardInterrupt:
        stream.write(f"\nstopped following the jobs; they keep running (scancel "
                     f"{' '.join(ids)} stops them; `clbench sweep status FILE` follows them)\n")
        raise
    return ended


def _finish_job(run: RunSpec, job, records: Path, live: LiveTable | None) -> str:
    log = str(job.paths.stdout)
    try:
        outcome = job.result()
    except Exception as err:  # noqa: BLE001 - submitit's FailedJobError holds the traceback
        record = read_record(records, run.key)
        error = record.get("error") if record and record.get("status") == FAILED else None
        if error is None:
            lines = [line for line in str(err).splitlines() if line.strip()]
            error = lines[-1].strip() if lines else type(err).__name__
            write_record(records, run.key, {"key": run.key, "label": run.label(),
                                            "status": FAILED, "error": error, "log": log,
                                            "finished_at": _now()})
        if live is not None:
            live.set(run.key, FAILED, _outcome_note(None, error, log))
        return FAILED
    if live is not None:
        live.set(run.key, COMPLETED, _outcome_note(outcome, None, None))
    return COMPLETED


if __name__ == "__main__":
    sys.exit(worker_main())
