"""The champion watch's rows for people: a table, a terminal plot and a PNG of F1 across batches, a check line.

Shared by `trajet monitor` and the demo. The plotting libraries are imported inside the functions that draw,
so the CLI's start-up never pays for them (tests/test_watch.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from trajet.labels import ENTITY_TYPES
from trajet.watch import WatchConfig, WatchRow

#: Marks per champion version in the terminal plot, in order of first appearance (colour is not always there).
MARKS = ("•", "+", "o", "*", "#", "@", "%", "&")
ALERT_MARK = "X"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def short_source(source: str, limit: int = 32) -> str:
    """A batch's file or object name: the folder is the same inbox for every batch."""
    name = PurePosixPath(source.rstrip("/")).name or source
    return name if len(name) <= limit else "…" + name[-(limit - 1) :]


def entity_cell(per_entity: dict[str, Any]) -> str:
    """`D 0.95 A 0.93 V 0.80`; a type the batch neither annotates nor predicts shows `-`."""
    parts = []
    for ent in ENTITY_TYPES:
        row = per_entity.get(ent) or {}
        f1 = row.get("f1")
        shown = "-" if f1 is None or (not row.get("support") and not f1) else f"{f1:.2f}"
        parts.append(f"{ent[0]} {shown}")
    return " ".join(parts)


def behaviour_cell(behaviour: dict[str, Any]) -> str:
    """Answers changed by the invariance checks, the rows they touched, and the check that broke most."""
    if not behaviour.get("rows"):
        return "-"
    checks = behaviour.get("checks") or {}
    worst = max(checks.items(), key=lambda kv: kv[1].get("changed", 0), default=None)
    text = f"{behaviour.get('failures', 0)} ({behaviour.get('rows_changed', 0)}/{behaviour['rows']} rows)"
    if worst and worst[1].get("changed"):
        text += f", {worst[0].removeprefix('inv_')} {worst[1]['changed']}"
    return text


def watch_table(rows: Sequence[WatchRow], title: str = "champion watch") -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for col in ("batch", "source", "champion", "rows", "micro F1", "running avg", "per entity F1", "exact",
                "no-trip clean", "behaviour failures", "alert"):
        table.add_column(col, justify="right" if col in ("batch", "rows", "micro F1", "running avg", "exact") else "left")
    for r in rows:
        no_trip = "-" if r.no_trip_clean is None else f"{r.no_trip_clean:.2f} of {r.no_trip_rows}"
        alert = f"[bold red]ALERT[/] {escape(r.alert_reason)}" if r.alert else f"[green]{escape(r.alert_reason)}[/]"
        table.add_row(str(r.batch_id), escape(short_source(r.source)), escape(r.champion_version), str(r.rows),
                      _num(r.micro_f1), _num(r.running_average), entity_cell(r.per_entity), _num(r.exact_match),
                      no_trip, escape(behaviour_cell(r.behaviour)), alert)
    return table


def check_line(row: WatchRow | None) -> str:
    """One line for cron and alerting: what `trajet monitor --check` prints."""
    if row is None:
        return "ok: no batch scored by a champion yet"
    head = f"batch {row.batch_id} ({short_source(row.source)}), champion {row.champion_version}"
    return f"ALERT {head}: {row.alert_reason}" if row.alert else f"{head}: {row.alert_reason}"


def _series(rows: Sequence[WatchRow]) -> dict[str, list[WatchRow]]:
    """Rows with an F1, per champion version, in order of first appearance."""
    out: dict[str, list[WatchRow]] = {}
    for r in rows:
        if r.micro_f1 is not None:
            out.setdefault(r.champion_version, []).append(r)
    return out


def _y_floor(rows: Sequence[WatchRow], config: WatchConfig) -> float:
    lowest = min([r.micro_f1 for r in rows if r.micro_f1 is not None] + [config.min_f1])
    return max(0.0, round(lowest - 0.05, 2))


def terminal_plot(rows: Sequence[WatchRow], config: WatchConfig, *, width: int = 90, height: int = 20,
                  color: bool = True) -> str:
    """F1 per batch, one mark per champion version, the floor as a dashed line, alerts as X (plotext)."""
    import plotext as plt

    series = _series(rows)
    if not series:
        return "(no batch with an F1 to plot)"
    fig = plt.figure
    fig.clear()
    fig.plot_size(width, height)
    batches = sorted({r.batch_id for s in series.values() for r in s})
    key = []
    for mark, (version, found) in zip(MARKS * (len(series) // len(MARKS) + 1), series.items(), strict=False):
        fig.draw(fig.signal([r.batch_id for r in found], [r.micro_f1 for r in found], marker=mark).lines())
        key.append(f"{mark} {version}")
    fig.draw(fig.signal([batches[0], batches[-1]], [config.min_f1] * 2, marker="-").lines())
    key.append(f"- min_f1 {config.min_f1:.2f}")
    alerts = [r for r in rows if r.alert and r.micro_f1 is not None]
    if alerts:
        fig.draw(fig.signal([r.batch_id for r in alerts], [r.micro_f1 for r in alerts], marker=ALERT_MARK))
        key.append(f"{ALERT_MARK} alert")
    fig.legend(active=False)  # drawn inside the canvas it hides points; the key goes under the plot instead
    fig.title("champion strict micro F1 per batch")
    fig.label("batch", axis="x")
    fig.ruler("y").lim(_y_floor(rows, config), 1.0)
    fig.ruler("x").ticks(batches if len(batches) <= 15 else batches[:: max(1, len(batches) // 15)])
    text = fig.build().string(colorless=not color)
    return text + "\n" + "   ".join(key)


def write_png(rows: Sequence[WatchRow], config: WatchConfig, path: Path) -> Path:
    """The same trend as a matplotlib figure (Agg: no display needed), with the running averages dotted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.8), dpi=110)
    ax = fig.subplots()
    series = _series(rows)
    for version, found in series.items():
        (line,) = ax.plot([r.batch_id for r in found], [r.micro_f1 for r in found], marker="o", label=f"champion {version}")
        averaged = [r for r in found if r.running_average is not None]
        if averaged:
            ax.plot([r.batch_id for r in averaged], [r.running_average for r in averaged], ls=":", color=line.get_color(),
                    label=f"{version}: running average ({config.window} batches)")
    ax.axhline(config.min_f1, ls="--", color="grey", label=f"min_f1 {config.min_f1:.2f}")
    alerts = [r for r in rows if r.alert and r.micro_f1 is not None]
    if alerts:
        ax.scatter([r.batch_id for r in alerts], [r.micro_f1 for r in alerts], marker="x", s=90, color="red",
                   zorder=3, label="alert")
    batches = sorted({r.batch_id for r in rows})
    if batches and len(batches) <= 30:
        ax.set_xticks(batches)
    ax.set_ylim(_y_floor(rows, config), 1.005)
    ax.set_xlabel("batch")
    ax.set_ylabel("strict micro F1 on the batch's annotations")
    ax.set_title("Champion watch: the serving model on each new batch")
    ax.grid(alpha=0.3)
    if series or alerts:
        ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
