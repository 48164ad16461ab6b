"""The text the Prefect UI shows: counts as counts, data escaped, drops first, checks as rows (no server)."""

from __future__ import annotations

from flows.story import checks_rows, code, drops_first, gate_markdown, held_batch_markdown, md_text, number
from trajet.gate import GateDecision, GateRule


def test_counts_read_as_counts_and_scores_keep_four_decimals():
    assert [number(v) for v in (40.0, 2000, 0.5, 1.0, 0.0, None)] == ["40", "2,000", "0.5000", "1.0000", "0.0000", "-"]


def test_data_cannot_break_the_markdown():
    shown = md_text('a|b `c` [/] <script> *x*\u0007\n' + "z" * 300, limit=40)
    assert "|" not in shown.replace("\\|", "") and "<script>" not in shown and "\n" not in shown
    assert shown.startswith(r"a\|b \`c\` \[/\] &lt;script&gt; \*x\*\\x07\\n") and shown.endswith(" …")
    assert md_text(b"\xff\xfeok") == r"\\xff\\xfeok"


def test_drops_come_first_largest_first():
    rows = [{"metric": m, "delta": d} for m, d in [("a", "0.0100"), ("b", "-0.0200"), ("c", "-"), ("d", "-0.3000"), ("e", "0.0000")]]
    assert [(r["metric"], r["change"]) for r in drops_first(rows)] == [
        ("d", "DROP"), ("b", "DROP"), ("a", "up"), ("c", "-"), ("e", "same")]


def test_gate_table_marks_failed_rules_first():
    decision = GateDecision(passed=False, has_champion=True, rules=[
        GateRule("same_test_set", 40.0, 40.0, True, "candidate scored on 40 test sentences, champion on 40"),
        GateRule("min_macro_f1", 0.41, 0.95, False, "candidate macro F1 0.4100 vs minimum 0.9500"),
    ])
    rows = [line for line in gate_markdown(decision, "v1").splitlines() if line.startswith("| ")]
    assert rows[2] == "| **FAIL** | **min_macro_f1** | **0.4100** | **0.9500** | **candidate macro F1 0.4100 vs minimum 0.9500** |"
    assert rows[3].startswith("| pass | same_test_set | 40 | 40 |")


def test_nested_batch_checks_become_rows():
    checks = {"bad_ratio": 0.7, "label_distribution": {"batch": {"DEPART": 0.5}, "max_shift": None}, "unseen_places": 3}
    assert checks_rows(checks) == [("bad_ratio", "0.7000"), ("label_distribution.batch.DEPART", "0.5000"),
                                   ("label_distribution.max_shift", "-"), ("unseen_places", "3")]


def test_held_batch_page_lists_lines_per_reason_and_caps_the_sample():
    report = {"batch_id": 7, "status": "held", "source": "in/x.jsonl", "sha256": "ab" * 32, "rows_read": 40,
              "quarantined": 40, "message": "held: 30 of 40 rows are bad", "checks": {}}
    rows = [{"line": n, "reasons": ["empty_text"] if n % 4 else ["held"], "raw": f'{{"text": "{n}"}}'.encode()}
            for n in range(1, 41)]
    page = held_batch_markdown(report, rows)
    assert "| empty\\_text | 30 | 1, 2, 3, 5, 6, 7, 9," in page and "and 5 more |" in page
    assert "| held | 10 | 4, 8, 12, 16, 20, 24, 28, 32, 36, 40 |" in page
    assert "| 10 | empty\\_text |" in page and "| 11 | " not in page  # 10 raw rows shown of 40
    assert "trajet quarantine export 7 --output quarantine-7.jsonl" in page


def test_inline_code_keeps_paths_verbatim():
    assert code("/tmp/a_b/registry") == "`/tmp/a_b/registry`"
    assert code("x`y") == "``x`y``" and code("`x") == "`` `x ``"
    assert code("a|b", in_table=True) == r"`a\|b`"
