"""The benchmark's outputs: the JSON of every figure, a markdown table, a PNG chart, the ratios.

Everything is derived from the one results dict `bench.run` builds, so the three files always
agree. The PNG is for people (git-ignored); the JSON and the markdown are the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TARGET_P99_MS = 50.0
TARGET_RSS_MB = 300.0
PEERS = ("pyflink-sql", "quix-streams", "bytewax")  # start-up left out for these (steady)


def _system(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    for system in results["systems"]:
        if system["name"] == name and system.get("tx_per_s"):
            return dict(system)
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    worker = _system(results, "worker-1") or {}
    hot = _system(results, "worker-1-hot") or {}
    two = _system(results, "worker-2") or {}
    eos = _system(results, "worker-1-exactly-once") or {}
    out: dict[str, float | None] = {}
    limits = ("aiokafka-drain", "confluent-drain", "faust-floor-events", "faust-floor-table")
    for ours, suffix in ((worker, ""), (hot, "-hot")):
        for peer in (*limits, *PEERS) if not suffix else PEERS:
            other = _system(results, peer + suffix) or {}
            name = f"worker{suffix}/{peer}{suffix}"
            out[f"{name} tx/s"] = _ratio(ours.get("tx_per_s"), other.get("tx_per_s"))
            out[f"{name} tx/CPU-s"] = _ratio(ours.get("tx_per_cpu_s"), other.get("tx_per_cpu_s"))
            if peer in PEERS:  # the drains have no start-up to leave out
                out[f"{name} steady tx/s"] = _ratio(
                    ours.get("steady_tx_per_s"), other.get("steady_tx_per_s")
                )
                out[f"{name} steady tx/CPU-s"] = _ratio(
                    ours.get("steady_tx_per_cpu_s"), other.get("steady_tx_per_cpu_s")
                )
    out["worker-hot/worker tx/s"] = _ratio(hot.get("tx_per_s"), worker.get("tx_per_s"))
    out["worker-hot/worker tx/CPU-s"] = _ratio(hot.get("tx_per_cpu_s"), worker.get("tx_per_cpu_s"))
    out["2 workers/1 worker tx/s"] = _ratio(two.get("tx_per_s"), worker.get("tx_per_s"))
    out["2 workers/1 worker tx/CPU-s"] = _ratio(two.get("tx_per_cpu_s"), worker.get("tx_per_cpu_s"))
    out["exactly-once/at-least-once tx/s"] = _ratio(eos.get("tx_per_s"), worker.get("tx_per_s"))
    out["exactly-once/at-least-once tx/CPU-s"] = _ratio(
        eos.get("tx_per_cpu_s"), worker.get("tx_per_cpu_s")
    )
    return out


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def rss_projection(system: dict[str, Any], facts: dict[str, Any]) -> dict[str, float] | None:
    """RSS per pair in state from the run's timeline, and the RSS that makes at 1,000,000 pairs.

    Pairs in state grow with the records committed (about one new pair per record in this data
    set), so a straight line through the timeline's points gives the cost of one more pair.
    """
    points = [(c, rss) for _, c, rss, *_ in system.get("timeline", []) if c > 0]
    if len(points) < 3 or points[-1][0] - points[0][0] < 10_000:
        return None
    pairs_per_record = facts["distinct_pairs"] / facts["transactions"]
    xs = [c * pairs_per_record for c, _ in points]
    ys = [float(rss) for _, rss in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return {
        "kb_per_pair": round(slope * 1024, 2),
        "projected_mb_at_1m_pairs": round(mean_y + slope * (1_000_000 - mean_x)),
    }


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else "met" if ok else "missed"


def _versus(
    results: dict[str, Any],
    target: str,
    ours: str,
    other: str,
    key: str,
    at_least: float,
    steady: bool = False,
) -> dict[str, Any]:
    """One ratio target: system `ours` over system `other` on `key` (tx_per_s or tx_per_cpu_s),
    judged on the whole run's figures (or on the steady ones, start-up left out, when `steady`
    and both have them); the other ratio is shown beside."""
    a, b = _system(results, ours) or {}, _system(results, other) or {}
    whole = _ratio(a.get(key), b.get(key))
    after_start = _ratio(a.get(f"steady_{key}"), b.get(f"steady_{key}"))
    unit = "tx/s" if key == "tx_per_s" else "tx per CPU-s"
    ratio: float | None
    if steady and after_start is not None:
        ratio = after_start
        figures = f"steady {_fmt(a.get(f'steady_{key}'))} / {_fmt(b.get(f'steady_{key}'))} {unit}"
        beside = f"; whole run {_fmt(whole, 2)} ×" if whole is not None else ""
    else:
        ratio = whole
        figures = f"{_fmt(a.get(key))} / {_fmt(b.get(key))} {unit}"
        beside = f"; steady {_fmt(after_start, 2)} ×" if after_start is not None else ""
        if steady and whole is not None:
            beside += "; no steady rate for both: whole run"
    capped = [s["name"] for s in (a, b) if s and not s.get("completed")]
    measured = (
        f"{_fmt(ratio, 2)} × ({figures}{beside}"
        + (f"; capped: {', '.join(capped)}" if capped and ratio is not None else "")
        + ")"
    )
    return {
        "target": target,
        "measured": measured,
        "value": ratio,
        "met": None if ratio is None else ratio >= at_least,
    }


def _latency(results: dict[str, Any], rate: int) -> dict[str, Any]:
    at: dict[str, Any] = next(
        (x for x in _latencies(results) if x["rate"] == rate and x["guarantee"] == "at_least_once"),
        {},
    )
    p99 = at.get("p99_ms")
    lag = at.get("lag_at_end")
    return {
        "target": f"alert p99 < {TARGET_P99_MS:g} ms at {rate:,} tx/s, every record processed",
        "measured": f"{_fmt(p99)} ms over {_fmt(at.get('samples'))} alerts, lag at end {_fmt(lag)}"
        if at
        else "–",
        "value": p99,
        "met": None if p99 is None else p99 < TARGET_P99_MS and lag == 0,
    }


def _latencies(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The latency phase's runs (results written before exactly-once had one were all
    at-least-once)."""
    return [{"guarantee": "at_least_once", **x} for x in results.get("latency", [])]


def _memory(results: dict[str, Any]) -> dict[str, Any]:
    worker = _system(results, "worker-1") or {}
    facts = results["dataset"]
    held = next((x for x in results.get("state", []) if not x.get("error")), None)
    target = f"worker RSS < {TARGET_RSS_MB:g} MB with 1,000,000 distinct pairs in state"
    if held is not None:  # measured: a worker holding the pairs (bench.state)
        rss = (
            f"{held['rss_after_mb']:,} MB (peak {held['peak_rss_mb']:,} MB) with "
            f"{held['pairs_indexed']:,} pairs, restored from their changelog"
        )
        ok = held["peak_rss_mb"] < TARGET_RSS_MB and held["pairs_indexed"] >= 1_000_000
        return {"target": target, "measured": rss, "value": held["peak_rss_mb"], "met": ok}
    if not worker:
        return {"target": target, "measured": "–", "value": None, "met": None}
    projection = rss_projection(worker, facts) if not worker.get("completed") else None
    rss = (
        f"{_fmt(worker.get('peak_rss_mb'))} MB with ≈{_fmt(worker.get('pairs_in_state'))} "
        f"pairs in state (data set: {facts['distinct_pairs']:,} pairs)"
        + (
            f"; projected {projection['projected_mb_at_1m_pairs']:,} MB at 1,000,000 "
            f"pairs ({projection['kb_per_pair']:.2f} KB per pair, from the RSS timeline)"
            if projection
            else ""
        )
    )
    ok = (worker.get("peak_rss_mb") or 1e9) < TARGET_RSS_MB and (
        worker.get("pairs_in_state") or 0
    ) >= 1_000_000
    return {"target": target, "measured": rss, "value": worker.get("peak_rss_mb"), "met": ok}


# Issue 13's ratio targets: (target, our system, the other, figure, at least[, on steady
# figures: the hot runs are shorter than the cold ones, so start-up weighs more in them]).
RATIO_TARGETS = (
    (
        "worker (1 process) ≥ 2.0 × Faust's stock one-table-write floor, tx/s",
        "worker-1", "faust-floor-table", "tx_per_s", 2.0,
    ),
    ("worker ≥ 1.5 × Quix Streams, tx/s", "worker-1", "quix-streams", "tx_per_s", 1.5),
    ("worker ≥ 1.0 × PyFlink, tx per CPU-s", "worker-1", "pyflink-sql", "tx_per_cpu_s", 1.0),
    (
        "worker ≥ 1.0 × Bytewax, tx per CPU-s, cold pairs",
        "worker-1", "bytewax", "tx_per_cpu_s", 1.0,
    ),
    (
        "worker ≥ 1.0 × Bytewax, tx per CPU-s, hot pairs",
        "worker-1-hot", "bytewax-hot", "tx_per_cpu_s", 1.0,
    ),
    (
        "hot-pair rate ≥ 0.8 × cold-pair rate, our worker (steady tx/s)",
        "worker-1-hot", "worker-1", "tx_per_s", 0.8, True,
    ),
    (
        "2 workers: tx per CPU-s ≥ 0.9 × 1 worker's",
        "worker-2", "worker-1", "tx_per_cpu_s", 0.9,
    ),
)  # fmt: skip


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 13's targets, each a ratio (or a figure) of this one run, met or missed."""
    rows = [_versus(results, *target) for target in RATIO_TARGETS]
    return [*rows, _latency(results, 1000), _latency(results, 5000), _memory(results)]


def _systems_table(systems: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| system | tx/s | tx/s per process | tx per CPU-s | steady tx/s | steady tx per CPU-s "
        "| CPU-s | peak RSS (MB) | done | outputs / expected | broker CPU-s | other load (CPU-s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for s in systems:
        if s.get("error"):
            done = s["error"]
        else:
            done = "lag 0" if s.get("completed") else f"capped at {s['seconds']:.0f} s"
        outputs = (
            f"{s['outputs']:,} / {s['expected_outputs']:,}"
            if s.get("outputs") is not None and s.get("expected_outputs") is not None
            else "–"
        )
        lines.append(
            f"| {s['label']} | {_fmt(s.get('tx_per_s'))} | {_fmt(s.get('tx_per_s_per_process'))} "
            f"| {_fmt(s.get('tx_per_cpu_s'))} | {_fmt(s.get('steady_tx_per_s'))} "
            f"| {_fmt(s.get('steady_tx_per_cpu_s'))} | {_fmt(s.get('cpu_seconds'), 1)} "
            f"| {_fmt(s.get('peak_rss_mb'))} | {done} | {outputs} "
            f"| {_fmt(s.get('broker_cpu_seconds'), 1)} | {_fmt(s.get('other_cpu_seconds'), 1)} |"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    facts = results["dataset"]
    lines = [
        f"# Benchmark {results['name']}",
        "",
        f"Commit `{results['git']['commit']}`{' (uncommitted changes)' if results['git']['dirty'] else ''}"  # noqa: E501
        f", {results['machine']['cores']} cores, {results['machine']['memory_gib']} GiB; "
        f"load average at start {results['machine']['load_at_start']}.",
        "",
        f"Data: {facts['transactions']:,} transactions on `transactions` (8 partitions, keyed by "
        f"pair), {facts['accounts']:,} accounts, {facts['distinct_pairs']:,} distinct pairs, "
        f"{facts['structuring_share']:.2%} of records in injected structuring cases "
        f"({facts['scenarios_structuring']} structuring, {facts['scenarios_near_miss']} near "
        f"misses), {facts['event_time_span_s']:g} s of event time. Pre-filled in "
        f"{results['prefill_seconds']:.1f} s; the whole run took "
        f"{results['bench_seconds'] / 60:.1f} min.",
    ]
    hot = results.get("hot_dataset")
    if hot:
        lines += [
            "",
            f"Hot pairs: {hot['transactions']:,} transactions on `transactions-hot` (8 "
            f"partitions), {hot['accounts']:,} accounts, {hot['distinct_pairs']:,} distinct pairs "
            f"(as the original Go generator), no injected cases, {hot['event_time_span_s']:g} s "
            f"of event time. Pre-filled in {results['hot_prefill_seconds']:.1f} s.",
        ]
    for name, title in (("cold", "Cold pairs"), ("hot", "Hot pairs")):
        systems = [s for s in results["systems"] if s.get("dataset", "cold") == name]
        if systems:
            lines += ["", f"{title}:", "", *_systems_table(systems)]
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {_fmt(v, 3)} |" for k, v in results["ratios"].items()]
    lines += [
        "",
        "Alert latency (append time of the `threshold_crossed` alert minus append time of the "
        "transaction that crossed the threshold; visible: the time a live read_committed "
        "consumer of the alerts had it minus the same, which under exactly-once includes the "
        "wait for the batch's commit; generator at a fixed rate):",
        "",
        "| rate (tx/s) | guarantee | sent | alerts | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) "
        "| visible p50 (ms) | visible p99 (ms) | worker tx per CPU-s | lag at end |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in _latencies(results):
        lines.append(
            f"| {x['rate']:,} | {x['guarantee']} | {_fmt(x.get('sent'))} "
            f"| {_fmt(x.get('alerts'))} | {_fmt(x.get('p50_ms'))} | {_fmt(x.get('p95_ms'))} "
            f"| {_fmt(x.get('p99_ms'))} | {_fmt(x.get('max_ms'))} "
            f"| {_fmt(x.get('visible_p50_ms'))} | {_fmt(x.get('visible_p99_ms'))} "
            f"| {_fmt(x.get('tx_per_cpu_s'))} | {_fmt(x.get('lag_at_end'))} |"
        )
    if results.get("state"):
        lines += [
            "",
            "Memory: one worker restores a table of distinct pairs from its changelog (the values "
            "the worker itself stores, bench/state.py), then indexes them at its first record; "
            "restored: seconds from the worker's start to ready; indexed: seconds from ready to "
            "every pair indexed (polled every 0.25 s); peak RSS over both, RSS 5 s after:",
            "",
            "| RocksDB sizes | pairs | restored (s) | indexed (s) | peak RSS (MB) | RSS after (MB) "
            "| CPU-s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for x in results["state"]:
            lines.append(
                f"| {x['label']} | {_fmt(x.get('pairs_indexed'))} | {_fmt(x.get('restored_s'), 1)} "
                f"| {_fmt(x.get('indexed_s'), 1)} | {_fmt(x.get('peak_rss_mb'))} "
                f"| {_fmt(x.get('rss_after_mb'))} | {_fmt(x.get('cpu_seconds'), 1)} |"
                + (f" {x['error'][:200]}" if x.get("error") else "")
            )
    lines += [
        "",
        "Targets (issue 13), each from this run's figures (tx/s and tx per CPU-s from start to "
        "lag 0 or to the cap; the steady ratio, start-up left out, is shown beside):",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [f"| {t['target']} | {t['measured']} | {_met(t['met'])} |" for t in results["targets"]]
    if results.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in results["systems"] if s.get("tx_per_s")]
    short = {
        "aiokafka-drain": "aiokafka\n(limit)",
        "confluent-drain": "confluent-kafka\n(limit)",
        "faust-floor-events": "Faust, empty\nagent (floor)",
        "faust-floor-table": "Faust, 1 table\nwrite (floor)",
        "worker-1": "our worker\n1 process",
        "worker-2": "our worker\n2 processes",
        "pyflink-sql": "PyFlink SQL",
        "quix-streams": "Quix Streams",
        "bytewax": "Bytewax",
    }
    labels = [
        short.get(s["name"].removesuffix("-hot"), s["label"])
        + ("\nhot pairs" if s.get("dataset") == "hot" else "")
        + ("" if s.get("completed") else "\n(capped)")
        for s in systems
    ]
    colours = [
        {"limit": "#9e9e9e", "worker": "#1f77b4", "peer": "#ff7f0e"}[s["kind"]] for s in systems
    ]
    fig, axes = plt.subplots(2, 2, figsize=(18, 9))
    panels = [
        (axes[0][0], "tx_per_s", "transactions per second (start to lag 0)"),
        (axes[0][1], "tx_per_cpu_s", "transactions per CPU-second"),
        (axes[1][0], "peak_rss_mb", "peak RSS (MB)"),
    ]
    for ax, key, title in panels:
        values = [s.get(key) or 0 for s in systems]
        bars = ax.bar(range(len(systems)), values, color=colours)
        ax.set_title(title)
        ax.set_xticks(range(len(systems)), labels, fontsize=7, rotation=30, ha="right")
        ax.set_yscale("log" if key != "peak_rss_mb" else "linear")
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                f"{value:,.0f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if key == "peak_rss_mb":
            ax.axhline(TARGET_RSS_MB, color="green", linestyle="--", linewidth=1)
    ax = axes[1][1]
    latency = [x for x in _latencies(results) if x["guarantee"] == "at_least_once"]
    width = 0.25
    for i, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        values = [x.get(q) or 0 for x in latency]
        positions = [j + (i - 1) * width for j in range(len(latency))]
        ax.bar(positions, values, width, label=q.removesuffix("_ms"))
    ax.set_xticks(range(len(latency)), [f"{x['rate']:,} tx/s" for x in latency])
    ax.axhline(TARGET_P99_MS, color="green", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_title("alert latency (ms, log scale); target p99 < 50 ms at 1,000 and 5,000 tx/s")
    ax.legend()
    fig.suptitle(
        f"fraud-detector benchmark {results['name']}: "
        f"{results['dataset']['transactions']:,} transactions"
        + (
            f" (cold pairs), {results['hot_dataset']['transactions']:,} (hot pairs)"
            if results.get("hot_dataset")
            else ""
        )
        + f", {results['machine']['cores']} cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(results: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    results["ratios"] = ratios(results)
    results["targets"] = targets(results)
    stem = directory / results["name"]
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path = stem.with_suffix(".md")
    md_path.write_text(markdown(results))
    png_path = stem.with_suffix(".png")
    chart(results, png_path)
    return [json_path, md_path, png_path]
