"""`trajet train`, `trajet evaluate`, `trajet base build-mini|mirror` (and registers `trajet predict` in its place).

torch and transformers are imported inside the command bodies so `trajet --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from trajet.backends import BACKEND_HELP
from trajet.commands.predict import predict
from trajet.errors import TrajetError

console = Console(stderr=True)

base_app = typer.Typer(help="Base models that training starts from.", no_args_is_help=True)


def train(
    train_file: Path | None = typer.Option(None, "--train", help="Training phrases (JSONL or CoNLL); default: the store."),
    validation_file: Path | None = typer.Option(
        None, "--validation", help="Validation phrases; default: 1/8 of --train chosen by hash of the text."
    ),
    snapshot: int | None = typer.Option(None, "--snapshot", help="Store snapshot id (default: a new snapshot)."),
    snapshot_uri: str | None = typer.Option(
        None, "--snapshot-uri", help="An exported snapshot (`trajet data export-snapshot`): <root>/snapshots/<hash>, "
        "a folder or s3://; read and checksum-verified without the database."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Model directory (default: TRAJET_HOME/models/latest)."),
    preset: str = typer.Option("auto", "--preset", envvar="TRAJET_TRAIN_PRESET",
                               help="reference, camembert, mini, minilm, tiny; auto = camembert on CUDA, mini on CPU."),
    sets: list[str] = typer.Option([], "--set", help="Override a TrainingConfig field: --set learning_rate=1e-3."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    nproc: int = typer.Option(1, "--nproc", help="Processes on this host, one per GPU, under torchrun (DDP); "
                              "1: in this process. batch_size is per process."),
    nnodes: int = typer.Option(1, "--nnodes", help="Hosts taking part: run the same command on each, with its "
                               "--node-rank."),
    node_rank: int = typer.Option(0, "--node-rank", help="This host's rank among --nnodes; node 0 writes the model."),
    rdzv_endpoint: str | None = typer.Option(None, "--rdzv-endpoint",
                                             help="HOST:PORT on the node-rank 0 host, reachable from every host."),
    ddp_backend: str = typer.Option("auto", "--ddp-backend", help="auto (nccl on CUDA, gloo on CPU), nccl or gloo."),
) -> None:
    """Fine-tune the NER model and write a safetensors model directory with its card and training record."""
    from trajet.config import home
    from trajet.distributed import Launch, run_training
    from trajet.train_config import config_for, parse_set_options
    from trajet.train_data import load_training_data

    launch = Launch(nproc, nnodes, node_rank, rdzv_endpoint, ddp_backend).check()
    cfg = config_for(preset, parse_set_options(sets))
    output = output or home() / "models" / "latest"
    if snapshot_uri is not None and (train_file is not None or snapshot is not None):
        raise TrajetError("--snapshot-uri reads an exported snapshot: give it without --train or --snapshot")
    tr, val, content_hash = load_training_data(train_file, validation_file, snapshot_id=snapshot,
                                               snapshot_uri=snapshot_uri)
    where = f" in {nproc * nnodes} processes ({launch.resolved_backend()})" if launch.distributed else ""
    console.print(f"training [bold]{escape(cfg.preset)}[/] ({escape(cfg.base_model)}) on {len(tr)} phrases, "
                  f"validating on {len(val)}{where}", highlight=False)
    result = run_training(tr, val, cfg, output, launch, snapshot_hash=content_hash, progress=not quiet)
    m = result.best_metrics
    scores = f"best macro F1 {m.get('f1_macro', 0):.4f}  micro F1 {m.get('f1_micro', 0):.4f}"
    if launch.node_rank != 0:
        console.print(f"[green]done[/] node {node_rank}: {scores}; node 0 wrote the model", highlight=False)
        return
    console.print(
        f"[green]saved[/] {escape(str(result.output_dir))}  {scores}  ({result.steps} steps, {result.seconds:.0f} s)"
    )


def evaluate(
    model: str = typer.Option(..., "--model", "-m", help="Model directory, `champion` or a registry version."),
    data: Path | None = typer.Option(None, "--data", help="Annotated phrases to score (JSONL or CoNLL)."),
    challenge: bool = typer.Option(False, "--challenge", help="Also score data/challenge.jsonl."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the JSON report here."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead of tables."),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
    behaviour_n: int = typer.Option(
        0, "--behaviour", help="Also run the behavioural suite (`trajet check`) with N sentences per test."
    ),
) -> None:
    """Strict seqeval (IOB2) scores per entity, micro/macro, exact match, no-trip and challenge groups."""
    from trajet.backends import check_backend
    from trajet.commands.predict import resolve_model
    from trajet.evaluate import evaluate_model, load_challenge, report_table, write_report
    from trajet.phrases import read_phrases
    from trajet.predict import load_predictor

    if data is None and not challenge and behaviour_n <= 0:
        raise TrajetError("nothing to evaluate: give --data FILE, --challenge and/or --behaviour N")
    check_backend(backend)  # before resolve_model may pull the champion
    predictor = load_predictor(resolve_model(model), backend=backend)
    test = read_phrases(data) if data is not None else []
    chal = load_challenge() if challenge else None
    result = {
        "test": evaluate_model(predictor, test) if data is not None else None,
        "challenge": evaluate_model(predictor, chal) if chal is not None else None,
    }
    if behaviour_n > 0:
        from trajet.evaluate import behaviour_evaluation

        result["behaviour"] = behaviour_evaluation(predictor, behaviour_n)
    text = write_report(result, output)
    if as_json:
        typer.echo(text)
        return
    out = Console()
    for name in ("test", "challenge"):
        if result.get(name):
            out.print(report_table(result[name], title=name if name == "challenge" else escape(str(data))))
    if result.get("behaviour"):
        from trajet.behaviour import report_table as behaviour_table

        out.print(behaviour_table(result["behaviour"]))
    if output:
        console.print(f"report written to {escape(str(output))}", highlight=False)


@base_app.command("build-mini")
def build_mini_cmd(
    output: Path | None = typer.Option(None, "--output", "-o", help="Directory (default: under TRAJET_HOME/bases)."),
    name: str = typer.Option("mini", "--name", help="mini or tiny."),
    corpus: list[Path] = typer.Option([], "--corpus", help="Extra phrase files (JSONL/CoNLL) for the tokenizer."),
    sets: list[str] = typer.Option([], "--set", help="Override a base setting: --set hidden_size=256."),
) -> None:
    """Build a small CamemBERT-architecture base from scratch with a BPE tokenizer trained on the corpus."""
    from trajet.minibase import MiniSpec, build_mini, build_or_reuse, project_corpus
    from trajet.phrases import read_phrases
    from trajet.train_config import parse_set_options

    overrides = {k: json.loads(v) if v.strip() else v for k, v in parse_set_options(sets).items()}
    texts = [p.text for f in corpus for p in read_phrases(f)]
    if output is None:
        out = build_or_reuse(name, corpus=texts, spec=overrides)
    else:
        out = build_mini(texts + project_corpus(), output, MiniSpec.named(name, overrides))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    console.print(f"[green]base ready[/] {escape(str(out))} ({size / 1e6:.1f} MB)", highlight=False)
    typer.echo(str(out))


@base_app.command("mirror")
def mirror_cmd(
    source: str = typer.Argument(..., help="A Hugging Face hub id (camembert-base) or a local model folder."),
    dest: str = typer.Argument(..., help="Where the workers will read it: s3://bucket/bases/NAME (or a folder)."),
    revision: str | None = typer.Option(None, "--revision", help="Hub branch, tag or commit (default: main)."),
) -> None:
    """Copy a pretrained base once, from a machine that reaches the hub, to where offline workers read it.

    Every file is uploaded and verified, then a manifest of sizes and sha256 is written last (a mirrored base
    is immutable, like a registry version). Training then takes TRAJET_TRAIN_BASE_MODEL=DEST and checks every
    file against that manifest when it downloads the base. Pickle weights (*.bin, *.pt) are never copied."""
    from trajet.base import mirror_base

    manifest = mirror_base(source, dest, revision=revision)
    size = sum(f["size"] for f in manifest["files"])
    origin = manifest.get("source", source) + (f"@{manifest['revision']}" if manifest.get("revision") else "")
    console.print(f"[green]mirrored[/] {escape(origin)} to {escape(dest)}: {len(manifest['files'])} files, "
                  f"{size / 1e6:.1f} MB, sha256 manifest {escape(dest.rstrip('/'))}/manifest.json", highlight=False,
                  soft_wrap=True)
    console.print(f"set TRAJET_TRAIN_BASE_MODEL={escape(dest)} on both workers", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("predict")(predict)
    app.add_typer(base_app, name="base")
