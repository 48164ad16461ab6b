"""Trainer callbacks: a readable progress line per validation, and the average of the last validated weights.

transformers is imported when a callback is made, never at module import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def evaluation_line(state: Any, metrics: Mapping[str, Any]) -> str:
    """One evaluation as a person reads it in a log: step, validation F1s, validation and training loss."""
    train_loss = next((row["loss"] for row in reversed(state.log_history) if "loss" in row), None)
    line = (
        f"step {state.global_step}/{state.max_steps}: validation macro F1 {metrics.get('eval_f1_macro', 0):.4f}, "
        f"micro F1 {metrics.get('eval_f1_micro', 0):.4f}, loss {metrics.get('eval_loss', 0):.4f}"
    )
    return line + (f", training loss {train_loss:.4f}" if train_loss is not None else "")


def progress_callback(enabled: bool, log_line: Callable[[str], None] | None = None) -> Any:
    """A rich progress bar instead of tqdm; evaluation lines show the F1 curve as it forms, on the console
    and, through `log_line`, in the caller's log (a Prefect run's log, where no console is watched)."""
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        def __init__(self) -> None:
            self.progress: Any = None
            self.task: Any = None
            self.logged_step = -1

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            if not enabled:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]training[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, status="")

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self.progress is not None:
                self.progress.update(self.task, completed=state.global_step)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001
            if not metrics:
                return
            if log_line is not None and state.global_step != self.logged_step:  # not the best model's re-scoring
                self.logged_step = state.global_step
                log_line(evaluation_line(state, metrics))
            if self.progress is not None:
                status = f"step {state.global_step}: macro F1 {metrics.get('eval_f1_macro', 0):.4f}"
                self.progress.update(self.task, status=status)
                self.progress.console.print(
                    f"  step {state.global_step:>5}  macro F1 {metrics.get('eval_f1_macro', 0):.4f}"
                    f"  micro F1 {metrics.get('eval_f1_micro', 0):.4f}  loss {metrics.get('eval_loss', 0):.4f}"
                )

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return RichProgress()


def averaging_callback(keep: int) -> Any:
    """Keeps CPU copies of the weights seen at the last `keep` evaluations (float tensors only)."""
    from collections import deque

    from transformers import TrainerCallback

    class WeightAverager(TrainerCallback):
        def __init__(self) -> None:
            self.states: deque[dict[str, Any]] = deque(maxlen=keep)
            self.frozen = False

        def on_evaluate(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
            if self.frozen or model is None:
                return
            self.states.append({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                                if v.is_floating_point()})

        def average(self) -> dict[str, Any]:
            n = len(self.states)
            return {k: sum(s[k].double() for s in self.states).div(n).to(self.states[-1][k].dtype)
                    for k in self.states[-1]}

    return WeightAverager()


def try_average(trainer: Any, averager: Any, best: dict[str, Any], metric: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scores the averaged weights on validation; keeps them only when they beat the best checkpoint."""
    key = "eval_" + metric
    report: dict[str, Any] = {"evaluations": len(averager.states), "used": False}
    if len(averager.states) < 2 or key not in best:
        return best, report
    model = trainer.model
    kept = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    model.load_state_dict({k: v.to(kept[k].device) for k, v in averager.average().items()}, strict=False)
    averaged = trainer.evaluate()
    report[metric] = averaged.get(key)
    report["best_checkpoint_" + metric] = best.get(key)
    score = averaged.get(key)
    better = score is not None and (score < best[key] if metric == "loss" else score > best[key])
    if better:
        report["used"] = True
        return averaged, report
    model.load_state_dict(kept, strict=False)
    return best, report


# Test-only: "R:N" makes rank R raise after N optimizer steps, as a rank that dies mid-run (a lost GPU, an OOM
# kill): tests/test_distributed.py checks that the run then fails cleanly. Unset in any real run.
FAIL_RANK_VAR = "TRAJET_TEST_FAIL_RANK"


def failure_hook(process_index: int) -> list[Any]:
    """[a callback that fails this rank at step N] when TRAJET_TEST_FAIL_RANK names it, else []."""
    import os

    from trajet.errors import TrajetError

    spec = os.environ.get(FAIL_RANK_VAR)
    if not spec:
        return []
    rank, _, after = spec.partition(":")
    if not (rank.isdigit() and after.isdigit()):
        raise TrajetError(f"{FAIL_RANK_VAR}={spec!r}: expected RANK:STEPS, e.g. 1:3")
    if int(rank) != process_index:
        return []
    from transformers import TrainerCallback

    class FailAtStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if state.global_step >= int(after):
                raise RuntimeError(f"rank {process_index} failed on purpose after step {state.global_step} "
                                   f"({FAIL_RANK_VAR})")

    return [FailAtStep()]
