"""Training: config precedence, encoding alignment, the saved model directory, S3 base mirroring, learning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.train_fixtures import make_phrases, trained_tiny
from trajet.base import fetch_base
from trajet.encoding import encode_phrases
from trajet.errors import TrajetError
from trajet.labels import LABEL2ID
from trajet.phrases import parse_markup
from trajet.train import train_model
from trajet.train_config import PRESETS, TrainingConfig, config_for, parse_set_options
from trajet.train_data import is_validation, load_training_data, split_validation, weighted


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("tiny"))


# ------------------------------------------------------------------------------------------ config


def test_reference_defaults():
    cfg = TrainingConfig()
    assert (cfg.base_model, cfg.max_length, cfg.batch_size, cfg.learning_rate) == ("camembert-base", 128, 16, 5e-5)
    assert (cfg.num_epochs, cfg.warmup_ratio, cfg.weight_decay) == (10, 0.1, 0.01)
    assert (cfg.eval_steps, cfg.save_steps, cfg.early_stopping_patience) == (100, 100, 3)
    assert cfg.metric_for_best_model == "f1_macro"


def test_dict_round_trip_and_overrides():
    cfg = TrainingConfig().with_overrides(learning_rate="1e-3", batch_size="8", base_spec='{"hidden_size": 64}')
    assert cfg.learning_rate == 1e-3 and cfg.batch_size == 8 and cfg.base_spec == {"hidden_size": 64}
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TrajetError, match="unknown training setting"):
        cfg.with_overrides(lerning_rate=1)
    with pytest.raises(TrajetError, match="batch_size"):
        cfg.with_overrides(batch_size="many")


def test_precedence_defaults_preset_env_explicit():
    env = {"TRAJET_TRAIN_LEARNING_RATE": "0.01", "TRAJET_TRAIN_BATCH_SIZE": "4"}
    cfg = config_for("mini", {"batch_size": 2}, environ=env)
    assert cfg.preset == "mini"
    assert cfg.base_model == PRESETS["mini"]["base_model"]  # preset over default
    assert cfg.learning_rate == 0.01  # env over preset
    assert cfg.batch_size == 2  # explicit over env
    assert cfg.weight_decay == 0.01  # untouched default
    with pytest.raises(TrajetError, match="unknown preset"):
        config_for("huge")


def test_every_preset_names_only_known_fields():
    for name, values in PRESETS.items():
        cfg = config_for(name, environ={})
        assert all(getattr(cfg, k) == v for k, v in values.items()), name


def test_every_field_has_help_and_trainer_names_exist():
    """The help is the field's documentation; the Trainer names are real `TrainingArguments` fields, so the
    arguments built from them are the ones the Trainer reads."""
    import dataclasses

    from transformers import TrainingArguments

    assert all(text.strip() for text in TrainingConfig.field_help().values())
    trainer_fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    mapped = TrainingConfig().trainer_arguments()
    assert set(mapped) <= trainer_fields
    assert mapped["per_device_train_batch_size"] == 16 and mapped["warmup_steps"] == 0.1
    assert mapped["num_train_epochs"] == 10.0 and mapped["lr_scheduler_type"] == "linear"


def test_training_arguments_from_the_config(tmp_path):
    from trajet.train import training_arguments

    cfg = config_for("tiny", {"dataloader_workers": 1, "augment": 0.5}, environ={})
    args = training_arguments(cfg, tmp_path / "ckpt")
    assert (args.per_device_train_batch_size, args.per_device_eval_batch_size) == (16, 128)
    assert (args.learning_rate, args.warmup_steps, args.eval_steps, args.save_steps) == (5e-3, 0.05, 20, 20)
    assert args.train_sampling_strategy == "sequential" and args.dataloader_prefetch_factor == 16
    assert args.greater_is_better and args.metric_for_best_model == "f1_macro" and args.seed == 42


def test_set_options_parse():
    assert parse_set_options(["learning_rate=1e-3", "base_spec={\"a\": 1}"]) == {
        "learning_rate": "1e-3",
        "base_spec": '{"a": 1}',
    }
    with pytest.raises(TrajetError, match="field=value"):
        parse_set_options(["learning_rate"])


# -------------------------------------------------------------------------------------------- data


def test_validation_split_is_by_normalised_text():
    phrases = make_phrases(400, seed=3)
    train, val = split_validation(phrases)
    assert len(train) + len(val) == 400
    assert 20 < len(val) < 80
    assert {p.text for p in train}.isdisjoint({p.text for p in val})
    assert is_validation("De PARIS à Lyon") == is_validation("de paris  a lyon")


def test_load_training_data_from_files(tmp_path):
    from trajet.phrases import write_jsonl

    write_jsonl(tmp_path / "train.jsonl", make_phrases(80, seed=4))
    write_jsonl(tmp_path / "val.jsonl", make_phrases(10, seed=5))
    tr, val, h = load_training_data(tmp_path / "train.jsonl", tmp_path / "val.jsonl")
    assert (len(tr), len(val), len(h)) == (80, 10, 64)
    (tmp_path / "bad.jsonl").write_text('{"text": "de Paris", "entities": []}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(TrajetError, match=r"bad.jsonl:2: 'text' must be a string"):
        load_training_data(tmp_path / "bad.jsonl")


def test_labels_sit_on_the_first_sub_token_only(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny["base"]))
    phrase = parse_markup("de [Zanzibarville-sur-Mer|D] à [Lyon|A]")
    (enc,) = encode_phrases([phrase], tok, 48)
    words = [t.text for t in phrase.tokens_and_tags()[0]]
    word_ids = tok(words, is_split_into_words=True).word_ids()
    assert word_ids.count(1) > 1  # the unseen name is split into several pieces
    labelled = [lab for lab in enc["labels"] if lab != -100]
    assert labelled == [LABEL2ID[t] for t in ["O", "B-DEPART", "O", "B-ARRIVEE"]]
    first_piece = word_ids.index(1)
    assert enc["labels"][first_piece] == LABEL2ID["B-DEPART"]
    assert all(enc["labels"][i] == -100 for i, w in enumerate(word_ids) if w == 1 and i != first_piece)
    assert enc["labels"][0] == -100 and enc["labels"][-1] == -100  # <s> and </s>


def test_validation_metrics_decode_log_probs_like_the_predictor():
    """Checkpoint selection scores what users get: two predicted departures are decoded as departure + stop."""
    import numpy as np

    from trajet.metrics import compute_token_metrics

    gold = [-100, LABEL2ID["B-DEPART"], LABEL2ID["O"], LABEL2ID["B-ARRIVEE"], LABEL2ID["B-VIA"], -100]
    probs = np.full((1, 6, len(LABEL2ID)), 0.01)
    for pos, (best, second) in {1: ("B-DEPART", None), 2: ("O", None), 3: ("B-ARRIVEE", None),
                                4: ("B-DEPART", "B-VIA")}.items():
        probs[0, pos, LABEL2ID[best]] = 0.6
        if second:
            probs[0, pos, LABEL2ID[second]] = 0.3
    decoded = compute_token_metrics(np.log(probs), [gold])
    assert decoded["f1_micro"] == 1.0 and decoded["exact_match"] == 1.0
    argmax = compute_token_metrics(np.log(probs).argmax(-1), [gold])  # ids alone: read leniently, no decoding
    assert abs(argmax["f1_micro"] - 2 / 3) < 1e-9  # 2 of 3 right: the second DEPART is wrong
    assert argmax["exact_match"] == 0.0


def test_validation_metrics_keep_entities_off_function_words():
    """"Paris Lyon la carte": the model tags `la` as a stop; decoded with the words' closed flags (as the
    predictor decodes) the stray entity goes, without them it stays."""
    import numpy as np

    from trajet.decode import closed_words
    from trajet.metrics import compute_token_metrics

    gold = [-100, LABEL2ID["B-DEPART"], LABEL2ID["B-ARRIVEE"], LABEL2ID["O"], LABEL2ID["O"], -100]
    probs = np.full((1, 6, len(LABEL2ID)), 0.01)
    for pos, best in {1: "B-DEPART", 2: "B-ARRIVEE", 3: "B-VIA", 4: "O"}.items():
        probs[0, pos, LABEL2ID[best]] = 0.9
    closed = [closed_words(["Paris", "Lyon", "la", "carte"])]
    assert compute_token_metrics(np.log(probs), [gold], closed)["exact_match"] == 1.0
    assert compute_token_metrics(np.log(probs), [gold])["exact_match"] == 0.0


# ----------------------------------------------------------------------------------- saved model


def test_saved_directory_is_safetensors_only_and_complete(tiny):
    model_dir: Path = tiny["model"]
    names = {p.name for p in model_dir.iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    assert not list(model_dir.parent.glob(".model.checkpoints"))  # intermediate checkpoints cleaned up
    info = json.loads((model_dir / "trajet_training.json").read_text())
    assert info["snapshot_hash"] == "abc123"
    assert info["config"]["preset"] == "tiny" and info["config"]["learning_rate"] == tiny["config"].learning_rate
    assert info["n_train"] == 200 and info["n_validation"] == 40
    assert info["metrics"]["f1_macro"] == pytest.approx(tiny["result"].best_metrics["f1_macro"])
    assert info["history"] and info["steps"] == tiny["result"].steps
    card = (model_dir / "README.md").read_text()
    assert card.startswith("---\nlanguage: fr\n") and "pipeline_tag: token-classification" in card
    assert f"{info['metrics']['f1_macro']:.4f}" in card


def test_reloads_with_plain_auto_classes(tiny):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny["model"]))
    model = AutoModelForTokenClassification.from_pretrained(str(tiny["model"]))
    assert model.config.id2label[1] == "B-DEPART" and model.config.label2id["I-VIA"] == 6
    enc = tok(["de", "Paris", "à", "Lyon"], is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        assert model(**enc).logits.shape[-1] == 7


def test_trained_model_learns(tiny):
    """F1 on its own training phrases far above the same architecture with an untrained head."""
    from transformers import AutoModelForTokenClassification

    from trajet.evaluate import evaluate_model
    from trajet.labels import ID2LABEL, LABEL2ID
    from trajet.predict import Predictor

    trained = evaluate_model(tiny["model"], tiny["train"])
    untrained_model = AutoModelForTokenClassification.from_pretrained(
        str(tiny["base"]), num_labels=7, id2label=dict(ID2LABEL), label2id=dict(LABEL2ID)
    ).eval()
    untrained = evaluate_model(Predictor(untrained_model, Predictor.load(tiny["model"]).tokenizer, max_length=48), tiny["train"])
    assert trained["micro"]["f1"] > 0.8
    assert trained["micro"]["f1"] > untrained["micro"]["f1"] + 0.5


def test_spelling_without_fuzzy_matching_is_refused_before_any_work(tmp_path):

    phrases = make_phrases(4)
    cfg = config_for("tiny", {"gazetteer_spelling": True, "gazetteer_fuzzy": False})
    with pytest.raises(TrajetError, match="gazetteer_spelling=true needs gazetteer_fuzzy=true"):
        train_model(phrases[:3], phrases[3:], cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------- base sources


def test_local_base_dir_without_config_is_refused(tmp_path):
    from trajet.base import resolve_base

    (tmp_path / "empty").mkdir()
    with pytest.raises(TrajetError, match="no config.json"):
        resolve_base(str(tmp_path / "empty"))


def test_s3_base_is_mirrored_once(tiny, tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bases")
        files = [p for p in Path(tiny["base"]).iterdir() if p.is_file()]
        from trajet.base import mirror_base

        mirror_base(str(tiny["base"]), "s3://bases/mini/v1")
        local = fetch_base("s3://bases/mini/v1", tmp_path / "cache")
        assert sorted(p.name for p in local.iterdir() if p.name != ".complete") == sorted(p.name for p in files)
        assert (local / "model.safetensors").read_bytes() == (Path(tiny["base"]) / "model.safetensors").read_bytes()
        stamp = (local / "config.json").stat().st_mtime_ns
        assert fetch_base("s3://bases/mini/v1", tmp_path / "cache") == local
        assert (local / "config.json").stat().st_mtime_ns == stamp  # not downloaded again
        with pytest.raises(TrajetError, match="no manifest.json"):
            fetch_base("s3://bases/nothing", tmp_path / "cache")
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_build_mini_and_train(tmp_path):
    from typer.testing import CliRunner

    from trajet.cli import app
    from trajet.phrases import write_jsonl

    runner = CliRunner()
    write_jsonl(tmp_path / "train.jsonl", make_phrases(64, seed=6))
    res = runner.invoke(
        app,
        ["base", "build-mini", "--name", "tiny", "--output", str(tmp_path / "base"),
         "--corpus", str(tmp_path / "train.jsonl"), "--set", "hidden_size=16"],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "base" / "model.safetensors").is_file() and (tmp_path / "base" / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "base" / "config.json").read_text())["hidden_size"] == 16

    res = runner.invoke(
        app,
        ["train", "--train", str(tmp_path / "train.jsonl"), "--preset", "tiny", "--output", str(tmp_path / "m"),
         "--set", f"base_model={tmp_path / 'base'}", "--set", "max_steps=6", "--set", "eval_steps=3",
         "--set", "save_steps=3", "--quiet"],
    )
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "m" / "trajet_training.json").read_text())
    assert info["steps"] == 6 and info["config"]["max_steps"] == 6
    assert info["n_train"] + info["n_validation"] == 64


def test_training_data_from_a_store_snapshot(tmp_path):
    from trajet import store
    from trajet.ingest import ingest_source
    from trajet.phrases import write_jsonl

    eng = store.get_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upgrade(engine=eng)
    write_jsonl(tmp_path / "batch.jsonl", make_phrases(300, seed=7))
    ingest_source(str(tmp_path / "batch.jsonl"), engine=eng)
    snap = store.create_snapshot(eng)
    tr, val, content_hash = load_training_data(engine=eng, snapshot_id=snap.id)
    assert content_hash == snap.content_hash
    assert len(tr) == snap.counts["train"] and len(val) == snap.counts["validation"] and val
    assert all(not is_validation(p.text) for p in tr) and all(is_validation(p.text) for p in val)


def test_concurrent_builds_of_one_base_both_succeed(tmp_path):
    """Two trainings starting together on one TRAJET_HOME build the same base; neither may break the other."""
    from concurrent.futures import ThreadPoolExecutor

    from transformers import CamembertConfig, CamembertModel  # noqa: F401  (lazy imports are not thread-safe)

    from trajet.minibase import MiniSpec, build_mini

    texts = [p.text for p in make_phrases(80, seed=3)]
    out = tmp_path / "bases" / "tiny-same"
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: build_mini(texts, out, MiniSpec.named("tiny")), range(2)))
    assert results == [out, out]
    assert (out / "config.json").is_file() and any(out.glob("*.safetensors"))
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny-same"]  # no staging folder left behind


def _linear_with(value: float):
    import torch

    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(value)
    return layer


def test_weight_averager_keeps_the_last_n_evaluated_states():
    from trajet.train_callbacks import averaging_callback

    averager = averaging_callback(3)
    for value in (1.0, 2.0, 4.0, 9.0):  # the first one falls out of the window
        averager.on_evaluate(None, None, None, model=_linear_with(value))
    averager.frozen = True
    averager.on_evaluate(None, None, None, model=_linear_with(100.0))  # ignored once frozen
    assert len(averager.states) == 3
    assert averager.average()["weight"].tolist() == [[5.0, 5.0]]


class _ScoringTrainer:
    """Stands in for the HF Trainer: evaluate() scores the real module's weights (closer to target = better)."""

    def __init__(self, model, target: float) -> None:
        self.model, self.target = model, target

    def evaluate(self):
        w = float(self.model.weight.detach().mean())
        return {"eval_f1_macro": 1.0 - abs(w - self.target), "eval_loss": abs(w - self.target)}


@pytest.mark.parametrize(("target", "used", "final"), [(5.0, True, 5.0), (9.0, False, 9.0)])
def test_average_is_kept_only_when_it_beats_the_best_checkpoint_on_validation(target, used, final):
    from trajet.train_callbacks import averaging_callback, try_average

    averager = averaging_callback(3)
    for value in (2.0, 4.0, 9.0):
        averager.on_evaluate(None, None, None, model=_linear_with(value))
    trainer = _ScoringTrainer(_linear_with(9.0), target)  # the loaded best checkpoint: weights 9
    best = trainer.evaluate()
    metrics, report = try_average(trainer, averager, best, "f1_macro")
    assert report["used"] is used and report["evaluations"] == 3
    assert report["f1_macro"] == pytest.approx(1.0 - abs(5.0 - target))
    assert float(trainer.model.weight.detach().mean()) == pytest.approx(final)
    assert metrics["eval_f1_macro"] == pytest.approx(1.0 - abs(final - target))


def test_average_of_loss_is_kept_when_lower():
    from trajet.train_callbacks import averaging_callback, try_average

    averager = averaging_callback(2)
    for value in (4.0, 6.0):
        averager.on_evaluate(None, None, None, model=_linear_with(value))
    trainer = _ScoringTrainer(_linear_with(6.0), 5.0)
    metrics, report = try_average(trainer, averager, trainer.evaluate(), "loss")
    assert report["used"] and metrics["eval_loss"] == pytest.approx(0.0)


def test_training_with_weight_averaging_records_and_saves_the_chosen_weights(tmp_path, tiny):
    from trajet.evaluate import evaluate_model
    from trajet.predict import Predictor

    cfg = config_for("tiny", {"base_model": str(tiny["base"]), "num_epochs": 7, "average_last": 3})
    result = train_model(tiny["train"], tiny["val"], cfg, tmp_path / "m", progress=False)
    info = json.loads((result.output_dir / "trajet_training.json").read_text())
    report = info["weight_average"]
    assert report["evaluations"] == 3 and isinstance(report["used"], bool)
    chosen = report["f1_macro"] if report["used"] else report["best_checkpoint_f1_macro"]
    assert info["metrics"]["f1_macro"] == pytest.approx(chosen)
    # The saved weights are the chosen ones: re-scoring the saved model on validation gives the same macro F1.
    rescored = evaluate_model(Predictor.load(result.output_dir), tiny["val"])
    assert rescored["macro"]["f1"] == pytest.approx(chosen, abs=1e-6)


def test_training_with_pseudo_places_learns_and_records_the_setting(tmp_path, tiny):
    """Pseudo-places replace most training names here, yet the model still tags the real ones of its validation
    split: the hints and the context carry the decision, and the setting is saved with the model. Batches are
    prepared in a data-loader worker, as the mini preset does."""
    from trajet.evaluate import evaluate_model

    cfg = config_for("tiny", {"base_model": str(tiny["base"]), "num_epochs": 8, "augment": 1.0,
                              "augment_place_prob": 0.7, "dataloader_workers": 1})
    result = train_model(tiny["train"], tiny["val"], cfg, tmp_path / "m", progress=False)
    info = json.loads((result.output_dir / "trajet_training.json").read_text())
    assert info["config"]["augment_place_prob"] == 0.7 and info["config"]["augment"] == 1.0
    assert info["config"]["dataloader_workers"] == 1  # batches came from a worker process, as in the mini preset
    report = evaluate_model(result.output_dir, tiny["val"])
    print("pseudo-place tiny validation micro F1", report["micro"]["f1"])
    assert report["micro"]["f1"] > 0.8


def test_phrases_people_wrote_weigh_more_and_generated_ones_do_not():
    generated = [parse_markup("de [Lyon|D] à [Dijon|A]", pattern="plain"), parse_markup("vers [Metz|A]", pattern="to")]
    written = [parse_markup("je suis à [Tours|D], je dois rejoindre [Poitiers|A]", group="state_departure")]
    train = generated + written
    assert weighted(train, 1) is train
    out = weighted(train, 3)
    assert len(out) == 5
    assert [p.text for p in out].count(written[0].text) == 3
    assert all([p.text for p in out].count(g.text) == 1 for g in generated)
    with pytest.raises(TrajetError, match="human_weight must be at least 1"):
        train_model(train, written, config_for("tiny", {"human_weight": 0}), Path("/nonexistent/model"))


def test_same_seed_same_weights_whether_the_base_is_built_or_found_in_the_cache(tmp_path):
    """A built-in base is built with its own seed; the training that builds it must then draw exactly as one that
    finds it in the cache (before the fix, the first training on a fresh TRAJET_HOME gave another model)."""
    import hashlib

    from tests.train_fixtures import make_phrases
    from trajet.train import train_model
    from trajet.train_config import config_for

    train, val = make_phrases(80, seed=1), make_phrases(16, seed=2)
    cfg = config_for("tiny", {"base_model": "trajet:tiny", "max_steps": 6, "eval_steps": 3, "save_steps": 3})
    digests = []
    for run in ("built", "cached"):
        out = tmp_path / run
        train_model(train, val, cfg, out, snapshot_hash="abc123", progress=False)
        digests.append(hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest())
    from trajet import config as trajet_config

    built = [p for p in (trajet_config.home() / "bases").iterdir() if p.is_dir()]
    assert len(built) == 1  # built by the first run, found in the cache by the second
    assert digests[0] == digests[1]
