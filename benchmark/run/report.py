"""Plain-text views of stored runs for the terminal (`clbench runs`, `clbench show`, run summary).

The run report's metric lines come from the declarations in `clbench.metrics` (those shown at
`REPORT`), so a declared metric is printed without a line of its own here."""

from __future__ import annotations

from typing import Any

from clbench.metrics import (
    METRICS,
    MTIL_BY_DATASET,
    REPORT,
    REPRODUCTION,
    TUNING,
    shown_in,
    stored_value,
)


def purpose(run: dict) -> str | None:
    """"tuning" for a run stored by `clbench tune` (read from its config, else its summary)."""
    return ((run.get("config") or {}).get("purpose")
            or (run.get("summary") or {}).get("purpose") or run.get("purpose"))


def pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def strategy_label(strategy: str, source: dict | None) -> str:
    """The strategy's name, marked when a third-party package provided it."""
    if not source or source.get("source") != "third-party":
        return strategy
    return f"{strategy} (third-party: {source.get('distribution')} {source.get('version') or ''}" \
        .rstrip() + ")"


def format_runs(runs: list[dict]) -> str:
    if not runs:
        return "no runs stored yet (start one with `clbench run --strategy fft --scenario " \
               "proxy-20shot`)"
    final = METRICS["final_accuracy"]
    rows = []
    for r in runs:
        summary = r.get("summary") or {}
        status = r["status"] + (f" ({r['purpose']})" if r.get("purpose") in (TUNING,
                                                                            REPRODUCTION) else "")
        rows.append([r["id"][:12], status, strategy_label(r["strategy"],
                                                          r.get("strategy_source")),
                     r["scenario"], r["model"],
                     r["seed"], pct(stored_value(final, summary)),
                     f"{r['total_time_s']:.0f}s" if r.get("total_time_s") else "-",
                     (r.get("created_at") or "")[:19]])
    return table(["id", "status", "strategy", "scenario", "model", "seed",
                  f"{final.short_for()} {final.unit}",
                  "time", "created (UTC)"], rows)


def accuracy_table(run: dict) -> str:
    evals = [e for e in run["evaluations"] if e["subset"] == "all"]
    summary = run.get("summary") or {}
    # the scenario's order (the datasets in training order, or the target), then the controls;
    # the store returns eval sets alphabetically
    declared = [*(summary.get("datasets") or [summary.get("target")]),
                *(summary.get("controls") or [])]
    found = list(dict.fromkeys(e["eval_set"] for e in evals))
    sets = [n for n in declared if n in found] + [n for n in found if n not in declared]
    by_key = {(e["after_session"], e["eval_set"]): e["accuracy"] for e in evals}
    sessions = sorted({e["after_session"] for e in evals})
    rows = [["zero-shot" if s == 0 else f"session {s}", *[pct(by_key.get((s, n))) for n in sets]]
            for s in sessions]
    return table(["accuracy %", *sets], rows)


def matrix_table(run: dict, target: str) -> str:
    from clbench.metrics import accuracy_matrix

    sessions = len(run["sessions"])
    matrix = accuracy_matrix(run["evaluations"], target, sessions)
    rows = [[f"after {i + 1}", *[pct(a) for a in row]] for i, row in enumerate(matrix)]
    return table([f"{target} %", *[f"S{j}" for j in range(1, sessions + 1)]], rows)


def mtil_table(summary: dict) -> str:
    """A multi-dataset run's Transfer / Avg / Last per dataset and their means, beside the
    zero-shot row, as ZSCL's Table 1 lays them out (fractions shown as %)."""
    datasets = summary["datasets"]
    zero = (summary.get("matrix") or {}).get("rows", [[None] * len(datasets)])[0]
    columns = [summary.get(f"{name}_by_dataset") or [None] * len(datasets)
               for name in MTIL_BY_DATASET]
    rows = [[name, pct(zero[j]), *[pct(c[j]) for c in columns]]
            for j, name in enumerate(datasets)]
    rows.append(["mean", pct(summary.get("mtil_zero_shot")),
                 *[pct(summary.get(name)) for name in MTIL_BY_DATASET]])
    rows.append(["zero-shot row", "", pct(summary.get("mtil_zero_shot_transfer")),
                 pct(summary.get("mtil_zero_shot")), pct(summary.get("mtil_zero_shot"))])
    return table(["dataset", "zero-shot %", "Transfer %", "Avg %", "Last %"], rows)


def metric_lines(summary: dict) -> list[str]:
    """The declared metrics the run report shows (`REPORT`), one aligned "label: value" line
    each in declaration order; a metric the run did not record is left out."""
    controls = summary.get("controls") or {}
    items = []
    for metric, control in shown_in(REPORT, controls):
        value = stored_value(metric, summary, control)
        if value is None or (isinstance(value, list) and all(v is None for v in value)):
            continue
        items.append((metric.label_for(control) + ":", metric.text(value)))
    width = max((len(label) for label, _ in items), default=0)
    return [f"  {label:<{width}} {text}" for label, text in items]


def format_summary(run_id: str, summary: dict, total_time_s: float) -> str:
    sessions = summary.get("sessions")
    what = (f"datasets {' -> '.join(summary['datasets'])}" if summary.get("datasets")
            else f"target {summary.get('target')}")
    lines = [f"\nrun {run_id} completed in {total_time_s:.0f}s",
             f"  {what}" + (f", {sessions} sessions" if sessions else "")]
    if summary.get("purpose") == TUNING:
        lines.append("  tuning run: evaluated on validation data (the target's validation "
                     "split, the controls' val splits), not on test data")
    lines += metric_lines(summary)
    if summary.get("datasets"):
        lines += ["", *("  " + line for line in mtil_table(summary).split("\n")), ""]
    cost = summary.get("checkpoint_cost")
    if cost:
        lines.append(f"  session checkpoints: {cost['seconds']:.2f}s for {cost['sessions']}, "
                     f"{100 * cost['fraction_of_session_time']:.1f}% of the sessions' time")
    lines.append(f"  details: clbench show {run_id[:12]}")
    return "\n".join(lines)


def _trainable(count: int, total: int) -> str:
    return f"{count} ({100 * count / total:.2f}%)" if total else str(count)


def reuse_lines(reused: dict) -> list[str]:
    """What a run took from the caches instead of computing (its summary's `reused`)."""
    lines = []
    if reused.get("zero_shot_predictions"):
        lines.append(f"  zero-shot evaluation reused from the cache (computed by an earlier run "
                     f"of the same model and data): "
                     f"{', '.join(sorted(reused['zero_shot_predictions']))}")
    for name, sessions in sorted((reused.get("image_features") or {}).items()):
        lines.append(f"  {name}: evaluated from the image features of an earlier evaluation "
                     f"(image encoder unchanged) after session(s) "
                     f"{', '.join(map(str, sessions))}")
    if reused.get("preprocessed_images"):
        lines.append("  preprocessed images from the cache: " + ", ".join(
            f"{k} ({v})" for k, v in sorted(reused["preprocessed_images"].items())))
    if reused.get("text_heads"):
        lines.append(f"  text heads read from the cache: {reused['text_heads']}")
    return lines


def format_run(run: dict) -> str:
    model = run["model_arch"] + (f" @ {run['model_pretrained']}" if run.get("model_pretrained")
                                 else "")
    mark = ", tuning: evaluated on validation data" if purpose(run) == TUNING else ""
    lines = [
        f"run {run['id']}  [{run['status']}{mark}]",
        f"  strategy {strategy_label(run['strategy'], (run.get('config') or {}).get('strategy_source'))}"
        f"  scenario {run['scenario']}  model {model}  "
        f"seed {run['seed']}",
        f"  created {run.get('created_at')}  finished {run.get('finished_at') or '-'}  "
        f"time {run['total_time_s']:.0f}s" if run.get("total_time_s") else
        f"  created {run.get('created_at')}  finished {run.get('finished_at') or '-'}",
        f"  git {run.get('git_sha') or '-'}{' (dirty)' if run.get('git_dirty') else ''}  "
        f"config hash {run.get('config_hash')}",
    ]
    if run.get("error"):
        lines.append(f"  error: {run['error']}")
        if run["status"] == "failed" and (run.get("config") or {}).get("checkpoint_dir"):
            lines.append(f"  continue it from its last session checkpoint: clbench run "
                         f"--resume {run['id'][:12]}")
    lines += reuse_lines((run.get("summary") or {}).get("reused") or {})
    for note in (run.get("config") or {}).get("resumes") or []:
        forced = f"; forced despite: {'; '.join(note['forced'])}" if note.get("forced") else ""
        lines.append(f"  resumed after session {note.get('after_session')} on "
                     f"{note.get('host')} at {note.get('at')}{forced}")
    imported = (run.get("config") or {}).get("imported")
    if imported:
        who = ", ".join(f"{k} {v}" for k, v in (imported.get("submitter") or {}).items())
        lines.append(f"  imported {imported.get('imported_at', '')[:19]} from "
                     f"{imported.get('bundle')}" + (f" ({who})" if who else ""))
    for v in run.get("verifications") or []:
        verdict = ("verified" if v["within_tolerance"] and v["independent"] else
                   "reproduced (same host)" if v["within_tolerance"] else "NOT reproduced")
        lines.append(f"  {verdict}: largest difference {v['max_difference']:.4f} pts "
                     f"(tolerance {v['tolerance']}) by {v['verifier']} on {v['host']}, "
                     f"{(v['created_at'] or '')[:19]}")
    if run.get("strategy_config"):
        params = ", ".join(f"{k}={v}" for k, v in run["strategy_config"].items())
        lines.append(f"  strategy params: {params}")
    training = run.get("training_config") or {}
    if training:
        lines.append("  training: " + ", ".join(f"{k}={v}" for k, v in training.items()))
    if run["evaluations"]:
        lines += ["", accuracy_table(run)]
        # the summary names the target (the store lists eval sets in its own order)
        target = (run.get("summary") or {}).get("target") or run["evaluations"][0]["eval_set"]
        if run["sessions"] and any(e["subset"] != "all" for e in run["evaluations"]):
            lines += ["", matrix_table(run, target)]
    if run["sessions"]:
        total = run.get("total_params") or 0
        rows = [[s["index"], len(s["classes"]), len(s["sample_ids"]),
                 f"{s['train_time_s']:.1f}", f"{s['final_loss']:.3f}" if s.get("final_loss")
                 is not None else "-", _trainable(s.get("trainable_params") or 0, total),
                 f"{s['peak_memory_mb']:.0f}" if s.get("peak_memory_mb") is not None else "-",
                 ", ".join(f"{k}={v}" for k, v in (s.get("facts") or {}).items()) or "-"]
                for s in run["sessions"]]
        lines += ["", table(["session", "classes", "samples", "train s", "loss", "trainable",
                             "peak MB", "facts"], rows)]
    if run.get("summary"):
        s = run["summary"]
        lines += ["", format_summary(run["id"], s, run.get("total_time_s") or 0).strip()
                  .split("\n", 1)[1]]
    return "\n".join(lines)


PROVENANCE_KEYS = ("git_sha", "git_dirty", "packages", "hardware", "model_checkpoint_sha256",
                   "scenario_manifest_hash", "config_hash", "strategy_config_hash", "hostname",
                   "pid")


def run_json(run: dict) -> dict:
    """The documented `clbench show --json` shape: the run, its config, provenance, sessions
    and every evaluation as {after_session, eval_set, subset, accuracy, n}."""
    out = {k: run.get(k) for k in ("id", "status", "error", "strategy", "scenario", "model",
                                   "model_arch", "model_pretrained", "seed", "created_at",
                                   "started_at", "finished_at", "total_time_s",
                                   "trainable_params", "total_params")}
    out["config"] = run.get("config")
    out["provenance"] = {k: run.get(k) for k in PROVENANCE_KEYS}
    out["provenance"]["strategy_source"] = (run.get("config") or {}).get("strategy_source")
    out["summary"] = run.get("summary")
    out["verifications"] = run.get("verifications", [])
    out["sessions"] = run.get("sessions", [])
    keys = ("after_session", "eval_set", "subset", "accuracy", "n")
    out["evaluations"] = [{k: e[k] for k in keys} for e in run.get("evaluations", [])]
    return out
