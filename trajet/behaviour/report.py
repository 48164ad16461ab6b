"""The behavioural report as a rich table: one row per test, its pass rate and a few failing examples."""

from __future__ import annotations

from typing import Any

from rich.markup import escape


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    colour = "green" if value >= 0.95 else "yellow" if value >= 0.8 else "red"
    return f"[{colour}]{value:.3f}[/]"


def _example(failure: dict[str, Any]) -> str:
    got = ", ".join(failure["got"]) or "nothing"
    expected = ", ".join(failure["expected"]) or "nothing"
    return f"{escape(failure['input'])!s} [dim]->[/] got {escape(got)}; expected {escape(expected)}"


def report_table(report: dict[str, Any], examples: int = 2) -> Any:
    from rich.table import Table

    overall = report["overall"]
    title = (
        f"Behavioural suite {report['suite']} (seed {report['seed']}, {report['n_sentences']} sentences): "
        f"overall pass rate {_rate(overall['pass_rate'])}"
    )
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("test", no_wrap=True)
    table.add_column("kind")
    table.add_column("n", justify="right")
    table.add_column("pass rate", justify="right")
    table.add_column("failing examples (input -> got; expected)", overflow="fold")
    for name, test in report["tests"].items():
        shown = "\n".join(_example(f) for f in test["failures"][:examples])
        table.add_row(name, test["kind"], str(test["n"]), _rate(test["pass_rate"]), shown)
    for kind, stats in report["by_kind"].items():
        table.add_row(f"[bold]all {kind}[/]", kind, str(stats["n"]), _rate(stats["pass_rate"]), "")
    return table
