"""The HTTP service over real HTTP on loopback: uvicorn in a thread, httpx clients, tiny real models pushed to
a real local registry. Two tiny models whose classifier bias differs make a swap visible in the outputs."""

import json
import re
import threading
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import httpx
import pytest

from trajet.config import REPO_ROOT
from trajet.errors import TrajetError
from trajet.labels import ID2LABEL, LABEL2ID, LABELS

# The service wires two other stages together; until both are merged this file has nothing real to test.

TEXT = "Je veux aller de Paris à Lyon en passant par Dijon"
CORPUS = [
    TEXT,
    "de Nantes à Brest",
    "Metz - Lyon par Nancy",
    "un billet Bordeaux Toulouse demain matin",
    "je pars d'Orléans pour aller au Havre avec un arrêt à Rouen",
    "Quel temps fait-il à Marseille ?",
]


def _build_tiny_model(out: Path, seed: int, favoured: str) -> Path:
    """A real CamemBERT-architecture token classifier (hidden 32, 1 layer) and a BPE tokenizer trained with
    `tokenizers`, as training would save them. The classifier bias favours one label so that two such models
    disagree on every word."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import CamembertConfig, CamembertForTokenClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(CORPUS * 3, trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>", cls_token="<s>", sep_token="</s>",
    )
    fast.save_pretrained(out)
    config = CamembertConfig(
        vocab_size=len(fast), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=130, num_labels=len(LABELS), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID),
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    torch.manual_seed(seed)
    model = CamembertForTokenClassification(config)
    with torch.no_grad():
        model.classifier.weight.mul_(0.01)
        model.classifier.bias.zero_()
        model.classifier.bias[LABEL2ID[favoured]] = 5.0
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """'plain' tags nothing, 'departures' tags every word B-DEPART: a swap shows in every response."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "plain": _build_tiny_model(root / "plain", seed=1, favoured="O"),
        "departures": _build_tiny_model(root / "departures", seed=2, favoured="B-DEPART"),
    }


@pytest.fixture(scope="session")
def expected(tiny_models) -> dict[str, dict]:
    """What the prediction core itself answers for TEXT: the service must return exactly this."""
    from trajet.predict import Predictor

    return {name: Predictor.load(path).predict([TEXT])[0] for name, path in tiny_models.items()}


METRICS = {"test": {"micro": {"f1": 0.97}}, "challenge": {"micro": {"f1": 0.91}}}


@pytest.fixture
def registry(tmp_path, tiny_models):
    from trajet.registry import open_registry

    reg = open_registry(str(tmp_path / "registry"))
    reg.push("v1", tiny_models["plain"], {"metrics": METRICS})
    reg.promote("v1")
    return reg


def _service(registry, tmp_path, **kw):
    from trajet.service import ModelService

    service = ModelService(
        kw.pop("model_ref", "champion"), registry_uri=str(tmp_path / "registry"),
        cache_dir=tmp_path / "serve_cache", poll_interval=kw.pop("poll_interval", 0.1), **kw,
    )
    service.load_initial()
    return service


@pytest.fixture
def server(registry, tmp_path):
    """A running service following the champion, polling every 0.1 s; yields (base_url, service)."""
    from trajet.serve import create_app, serve_in_thread

    service = _service(registry, tmp_path)
    with serve_in_thread(create_app(service)) as url:
        yield url, service


def _wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------------------------------------ predict


def test_predict_one_text_and_a_list(server, expected):
    url, _ = server
    with httpx.Client(base_url=url) as client:
        one = client.post("/predict", json={"text": TEXT})
        assert one.status_code == 200, one.text
        assert one.json() == {"version": "v1", "prediction": expected["plain"]}

        many = client.post("/predict", json={"texts": [TEXT, "", TEXT]})
        assert many.status_code == 200, many.text
        body = many.json()
        assert body["version"] == "v1"
        assert len(body["predictions"]) == 3
        assert body["predictions"][0] == body["predictions"][2] == expected["plain"]
        assert set(body["predictions"][1]) == {"error"}  # an empty text is an item error, not a failed call

        assert client.post("/predict", json={"texts": []}).json() == {"version": "v1", "predictions": []}


def test_prediction_fields_match_trajet_predict(server, tiny_models):
    from trajet.predict import Predictor

    url, service = server
    text = "de Nantes à Brest"
    service.registry.push("v2", tiny_models["departures"], {"metrics": METRICS})
    service.registry.promote("v2")
    _wait_for(lambda: service.health()["version"] == "v2", what="v2")
    got = httpx.post(f"{url}/predict", json={"text": text}).json()["prediction"]
    assert got == Predictor.load(tiny_models["departures"]).predict([text])[0]
    assert {"entities", "departure", "arrival", "via"} <= set(got)
    assert got["entities"], "the 'departures' model tags every word"
    for ent in got["entities"]:
        assert set(ent) == {"start", "end", "label", "text", "score"}
        assert text[ent["start"]:ent["end"]] == ent["text"]
        assert 0.0 <= ent["score"] <= 1.0
    # it says DEPART for every word; decoding keeps one departure (its most probable) and reads the rest anew
    assert [e["label"] for e in got["entities"]].count("DEPART") == 1 and got["departure"] is not None


# ------------------------------------------------------------------------------------------ limits


def test_text_and_list_limits(server):
    url, _ = server
    with httpx.Client(base_url=url) as client:
        assert client.post("/predict", json={"text": "a" * 512}).status_code == 200

        long = client.post("/predict", json={"text": "a" * 513})
        assert long.status_code == 422
        assert long.json()["error"] == "text: text has 513 characters, the limit is 512"

        long_item = client.post("/predict", json={"texts": ["ok", "b" * 600]})
        assert long_item.status_code == 422
        assert long_item.json()["error"] == "texts[1]: text has 600 characters, the limit is 512"

        big_list = client.post("/predict", json={"texts": ["de Paris à Lyon"] * 65})
        assert big_list.status_code == 422
        assert big_list.json()["error"] == "texts: 65 texts in one request, the limit is 64"
        assert client.post("/predict", json={"texts": ["de Paris à Lyon"] * 64}).status_code == 200


def test_body_size_limit_from_header_and_from_actual_bytes(server):
    url, _ = server
    payload = json.dumps({"texts": ["x" * 500] * 140}).encode()  # ~70 KiB, every text within limits
    assert len(payload) > 64 * 1024
    with httpx.Client(base_url=url) as client:
        declared = client.post("/predict", content=payload, headers={"content-type": "application/json"})
        assert declared.status_code == 413
        assert declared.json() == {"error": "request body is larger than 65536 bytes"}

        def chunks():  # no Content-Length: chunked transfer, only the bytes received can be counted
            for i in range(0, len(payload), 8192):
                yield payload[i:i + 8192]

        streamed = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413
        assert "larger than 65536 bytes" in streamed.json()["error"]

        # the service is still healthy after refusing them
        assert client.post("/predict", json={"text": TEXT}).status_code == 200


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "de Paris', "request body is not valid JSON"),
        (b"", "request body is missing"),
        (b'["de Paris a Lyon"]', "request body must be a JSON object"),
        (b'{"text": "a", "texts": ["b"]}', "send exactly one of 'text'"),
        (b"{}", "send exactly one of 'text'"),
        (b'{"txt": "de Paris"}', "unknown field 'txt'"),
        (b'{"text": 42}', "text: must be a string"),
        (b'{"texts": "de Paris"}', "texts: must be a list of strings"),
        (b'{"texts": ["ok", null]}', "texts[1]: must be a string"),
    ],
)
def test_bad_requests_get_422_with_a_clear_message(server, content, message):
    url, _ = server
    resp = httpx.post(f"{url}/predict", content=content, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert message in resp.json()["error"]


# ------------------------------------------------------------------------------------------ /model /health


def test_model_health_and_openapi(server):
    url, service = server
    with httpx.Client(base_url=url) as client:
        model = client.get("/model").json()
        assert model["version"] == "v1"
        assert model["source"] == "registry"
        assert model["metrics"] == METRICS
        assert model["promoted_at"] == service.registry.champion()["promoted_at"]
        assert Path(model["model_dir"]).is_dir()

        _wait_for(lambda: client.get("/health").json()["last_poll"] is not None, what="a poll")
        health = client.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok"
        assert body["version"] == body["champion_version"] == "v1"
        assert body["last_load_error"] is None and body["follows_champion"] is True

        schema = client.get("/openapi.json").json()
        assert {"/predict", "/health", "/model"} <= set(schema["paths"])
        request_schema = json.dumps(schema["components"]["schemas"]["PredictRequest"])
        assert '"maxLength": 512' in request_schema and '"maxItems": 64' in request_schema


# ------------------------------------------------------------------------------------------ hot swap


def test_hot_swap_during_a_stream_of_requests(server, tiny_models, expected):
    """Clients keep sending while v2 is pushed and promoted: no request fails, each client sees v1 then v2
    (never back), and v2's answers are the second model's."""
    url, service = server
    stop = threading.Event()
    seen: dict[int, list[tuple[str, dict]]] = {}
    failures: list[str] = []

    def client_loop(n: int) -> None:
        seen[n] = []
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    resp = client.post("/predict", json={"texts": [TEXT, TEXT]})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if resp.status_code != 200:
                    failures.append(f"{resp.status_code} {resp.text}")
                    continue
                body = resp.json()
                seen[n].append((body["version"], body["predictions"][0]))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        _wait_for(lambda: all(len(seen.get(i, [])) >= 3 for i in range(4)), what="requests on v1")
        service.registry.push("v2", tiny_models["departures"], {"metrics": METRICS})
        service.registry.promote("v2")
        _wait_for(lambda: all(any(v == "v2" for v, _ in seen[i]) for i in range(4)), what="v2 in every client")
        marks = {i: len(seen[i]) for i in range(4)}
        _wait_for(lambda: all(len(seen[i]) >= marks[i] + 3 for i in range(4)), what="requests on v2")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)

    assert failures == []
    for i in range(4):
        versions = [v for v, _ in seen[i]]
        first_v2 = versions.index("v2")
        assert first_v2 >= 3
        assert set(versions[:first_v2]) == {"v1"} and set(versions[first_v2:]) == {"v2"}
        assert all(pred == expected["plain"] for v, pred in seen[i] if v == "v1")
        assert all(pred == expected["departures"] for v, pred in seen[i] if v == "v2")
    assert expected["plain"] != expected["departures"]
    assert service.swaps == 1
    # the old pulled folder is gone once the swap is done; only the served one stays
    assert [p.name.split("-")[0] for p in service.cache_dir.iterdir()] == ["v2"]


def _registry_files(registry_root: Path, version: str) -> list[Path]:
    files = [p for p in registry_root.rglob("*") if p.is_file() and version in p.relative_to(registry_root).parts]
    assert files, f"no stored files for {version} under {registry_root}"
    return files


@pytest.mark.parametrize("damage", ["corrupt_weights", "missing_file", "pointer_mismatch"])
def test_bad_champion_is_kept_out_and_reported(server, tiny_models, tmp_path, expected, damage):
    url, service = server
    service.registry.push("v2", tiny_models["departures"], {"metrics": METRICS})
    stored = _registry_files(tmp_path / "registry", "v2")
    if damage == "corrupt_weights":
        weights = next(p for p in stored if p.name.endswith(".safetensors"))
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF  # same size, different bytes: only a checksum can tell
        weights.write_bytes(bytes(data))
    elif damage == "missing_file":
        next(p for p in stored if p.name == "tokenizer.json").unlink()
    # Written by hand: `promote` itself refuses a damaged version, so this is storage damaged after promotion
    # (or, for pointer_mismatch, a pointer whose manifest hash is not v2's manifest).
    sha = "0" * 64 if damage == "pointer_mismatch" else service.registry.manifest_sha256("v2")
    pointer = {**service.registry.champion(), "version": "v2", "manifest_sha256": sha}
    (tmp_path / "registry" / "champion.json").write_text(json.dumps(pointer))

    with httpx.Client(base_url=url) as client:
        health = _wait_for(
            lambda: (h := client.get("/health").json())["last_load_error"] is not None and h,
            what="the load error on /health",
        )
        assert health["status"] == "degraded"
        assert health["version"] == "v1" and health["champion_version"] == "v2"
        assert health["last_load_error"]["version"] == "v2"
        reason = {"corrupt_weights": "checksum mismatch", "missing_file": "tokenizer.json",
                  "pointer_mismatch": "does not match the sha256 recorded in the champion pointer"}[damage]
        assert reason in health["last_load_error"]["error"]
        resp = client.post("/predict", json={"text": TEXT})
        assert resp.status_code == 200
        assert resp.json() == {"version": "v1", "prediction": expected["plain"]}
        assert client.get("/model").json()["version"] == "v1"

        # a good promotion afterwards is picked up and clears the error
        service.registry.push("v3", tiny_models["departures"], {"metrics": METRICS})
        service.registry.promote("v3")
        _wait_for(lambda: client.get("/health").json()["version"] == "v3", what="v3")
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["last_load_error"] is None
        assert client.post("/predict", json={"text": TEXT}).json()["prediction"] == expected["departures"]
    assert not any(p.name.startswith("v2-") for p in service.cache_dir.iterdir())


def test_rollback_away_from_a_bad_champion_clears_the_error(server, tiny_models, tmp_path):
    url, service = server
    service.registry.push("v2", tiny_models["departures"], {"metrics": METRICS})
    next(p for p in _registry_files(tmp_path / "registry", "v2") if p.name == "config.json").write_text("{}")
    pointer = {**service.registry.champion(), "version": "v2", "previous": "v1", "history": ["v1"],
               "manifest_sha256": service.registry.manifest_sha256("v2")}  # damaged after its promotion
    (tmp_path / "registry" / "champion.json").write_text(json.dumps(pointer))
    _wait_for(lambda: service.health()["last_load_error"] is not None, what="the load error")
    assert "checksum mismatch" in service.health()["last_load_error"]["error"]
    service.registry.rollback()
    _wait_for(lambda: service.health()["champion_version"] == "v1", what="the rollback to be seen")
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["version"] == "v1" and health["last_load_error"] is None
    assert health["swaps"] == 0


# ------------------------------------------------------------------------------------------ other refs


def test_pinned_version_and_directory_do_not_follow_the_champion(registry, tmp_path, tiny_models, expected):
    from trajet.serve import create_app, serve_in_thread

    pinned = _service(registry, tmp_path, model_ref="v1")
    directory = _service(registry, tmp_path, model_ref=str(tiny_models["departures"]))
    registry.push("v2", tiny_models["departures"], {"metrics": METRICS})
    registry.promote("v2")
    for service, version, pred in ((pinned, "v1", expected["plain"]),
                                   (directory, "dir:departures", expected["departures"])):
        with serve_in_thread(create_app(service)) as url:
            time.sleep(0.3)  # three poll intervals: nothing must change
            resp = httpx.post(f"{url}/predict", json={"text": TEXT}).json()
            assert resp == {"version": version, "prediction": pred}
            health = httpx.get(f"{url}/health").json()
            assert health["follows_champion"] is False and health["swaps"] == 0


def test_empty_registry_refuses_to_start(tmp_path):
    from trajet.service import ModelService

    service = ModelService("champion", registry_uri=str(tmp_path / "empty"), poll_interval=1)
    with pytest.raises(TrajetError, match="no champion"):
        service.load_initial()


# ------------------------------------------------------------------------------------------ README snippet


def _readme_python_block() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Serving", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Serving section has one python snippet"
    return blocks[0]


def test_readme_snippet_loads_the_pulled_model_as_the_service_does(registry, tmp_path, monkeypatch, tiny_models):
    """The snippet runs as written against a champion pulled from the registry and prints the entities the
    service gives."""
    from trajet.predict import Predictor

    registry.push("v2", tiny_models["departures"], {"metrics": METRICS})
    registry.promote("v2")
    work = tmp_path / "snippet"
    work.mkdir()
    registry.pull("champion", work / "champion")  # what `trajet serve` loads, checksums verified
    monkeypatch.chdir(work)
    out = StringIO()
    with redirect_stdout(out):
        exec(compile(_readme_python_block(), "README.md#serving", "exec"), {"__name__": "__readme__"})
    text = "Je veux aller de Paris à Lyon en passant par Dijon"
    served = Predictor.load(work / "champion").predict([text])[0]
    printed = out.getvalue().strip().splitlines()
    assert printed[0] == f"{served['departure']} {served['arrival']} {served['via']}"
    assert printed[1:] == [f"{e['label']} {e['start']} {e['end']} {e['text']} {e['score']}" for e in served["entities"]]


# ------------------------------------------------------------------------------------------ S3, CLI


def test_follows_a_champion_in_s3(tmp_path, monkeypatch, tiny_models, expected):
    """Same service against an S3 registry (moto's server on loopback): initial load, then a hot swap."""
    import boto3
    from moto.server import ThreadedMotoServer

    from trajet.registry import open_registry
    from trajet.serve import create_app, serve_in_thread
    from trajet.service import ModelService

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for name, value in {
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="models")
        uri = "s3://models/trajet"
        reg = open_registry(uri)
        reg.push("v1", tiny_models["plain"], {"metrics": METRICS})
        reg.promote("v1")

        service = ModelService("champion", registry_uri=uri, cache_dir=tmp_path / "cache", poll_interval=0.1)
        service.load_initial()
        with serve_in_thread(create_app(service)) as url, httpx.Client(base_url=url) as client:
            assert client.post("/predict", json={"text": TEXT}).json() == {
                "version": "v1", "prediction": expected["plain"]}
            assert client.get("/model").json()["registry"] == uri
            reg.push("v2", tiny_models["departures"], {"metrics": METRICS})
            reg.promote("v2")
            _wait_for(lambda: client.get("/health").json()["version"] == "v2", what="v2 from S3")
            assert client.post("/predict", json={"text": TEXT}).json() == {
                "version": "v2", "prediction": expected["departures"]}
    finally:
        moto.stop()


def test_cli_refuses_to_start_without_a_champion(tmp_path):
    from typer.testing import CliRunner

    from trajet.cli import app

    result = CliRunner().invoke(app, ["serve", "--registry", str(tmp_path / "empty")])
    assert result.exit_code != 0
    assert isinstance(result.exception, TrajetError)
    assert "no champion" in str(result.exception)

    result = CliRunner().invoke(app, ["serve", "--model", "./no/such/dir"])
    assert isinstance(result.exception, TrajetError) and "no such model directory" in str(result.exception)

    result = CliRunner().invoke(app, ["serve", "--model", "v9", "--registry", str(tmp_path / "empty")])
    assert isinstance(result.exception, TrajetError) and "no model version v9" in str(result.exception)

    result = CliRunner().invoke(app, ["serve", "--max-texts", "0"])
    assert isinstance(result.exception, TrajetError) and "--max-texts must be positive" in str(result.exception)


@pytest.mark.slow
def test_trajet_serve_command_end_to_end(registry, tmp_path):
    """The real command in its own process: options reach the service, SIGINT stops it cleanly."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "trajet", "serve", "--registry", str(tmp_path / "registry"), "--port", str(port),
           "--poll-interval", "0.5", "--max-texts", "2", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, "TRAJET_HOME": str(tmp_path / "home")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"trajet serve exited: {proc.stderr.read()}")
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(ready, timeout=120, what="trajet serve to answer")
        assert httpx.post(f"{url}/predict", json={"texts": ["de Paris à Lyon"] * 2}).json()["version"] == "v1"
        too_many = httpx.post(f"{url}/predict", json={"texts": ["de Paris à Lyon"] * 3})
        assert too_many.status_code == 422 and "limit is 2" in too_many.json()["error"]
        health = httpx.get(f"{url}/health").json()
        assert health["poll_interval_s"] == 0.5 and health["follows_champion"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "serving v1 on http://127.0.0.1" in err
    assert (tmp_path / "home" / "serve" / "models").is_dir()  # pulled under TRAJET_HOME by default


def test_concurrent_requests_are_merged_into_one_batch(registry, tmp_path):
    """While the model is busy, queued requests wait and then go through in one forward pass; each gets
    exactly its own results back, in order."""
    service = _service(registry, tmp_path)
    model = service.current
    real_predict = model.predictor.predict
    calls: list[list[str]] = []
    release = threading.Event()

    def recording_predict(texts):
        calls.append(list(texts))
        if len(calls) == 1:
            release.wait(10)  # hold the model busy until the others have queued
        return real_predict(texts)

    model.predictor.predict = recording_predict
    texts = [[f"de Paris à Lyon {i}", ""] if i % 2 else [f"Metz - Nancy {i}"] for i in range(8)]
    results: dict[int, tuple[str, list]] = {}

    def call(i: int) -> None:
        results[i] = service.predict(texts[i])

    first = threading.Thread(target=call, args=(0,))
    first.start()
    _wait_for(lambda: len(calls) == 1, what="the first batch")
    others = [threading.Thread(target=call, args=(i,)) for i in range(1, 8)]
    for t in others:
        t.start()
    _wait_for(lambda: len(model.runner._queue) == 7, what="seven queued requests")
    release.set()
    for t in (first, *others):
        t.join(10)

    assert calls == [texts[0], [t for i in range(1, 8) for t in texts[i]]]
    for i in range(8):
        version, got = results[i]
        assert version == "v1"
        assert got == real_predict(texts[i])


def test_a_failing_prediction_is_a_json_500_and_the_service_goes_on(server, monkeypatch, expected):
    url, service = server
    predictor = service.current.predictor

    def broken(texts):
        raise RuntimeError("CUDA error: out of memory")

    with httpx.Client(base_url=url) as client:
        monkeypatch.setattr(predictor, "predict", broken)
        resp = client.post("/predict", json={"text": TEXT})
        assert resp.status_code == 500
        assert resp.json() == {"error": "internal error: RuntimeError: CUDA error: out of memory"}
        monkeypatch.undo()
        assert client.post("/predict", json={"text": TEXT}).json()["prediction"] == expected["plain"]


# ------------------------------------------------------------------------------------------ memory


def _live_tensors() -> int:
    import gc
    import warnings

    import torch

    gc.collect()
    with warnings.catch_warnings():  # isinstance() on torch's deprecated module attributes warns
        warnings.simplefilter("ignore")
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def _rss_mib() -> float:
    import os

    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_hot_swaps_do_not_leak_models(registry, tmp_path, tiny_models):
    """Nightly promotions for weeks: memory after many swaps is what it was after a few. A traced (TorchScript)
    model used to keep every previous model's graph and weights alive (+1 live tensor and ~3.5 MiB per swap with
    this tiny model, ~13 MiB with the mini preset)."""
    registry.push("v2", tiny_models["departures"], {"metrics": METRICS})
    service = _service(registry, tmp_path)  # the poller is not started: poll_once is called here

    def swap_to(version: str) -> None:
        registry.promote(version)
        assert service.poll_once() and service.current.version == version
        assert service.current.predictor._traced is not None  # the traced path, where the leak was
        service.predict([TEXT])

    for version in ("v2", "v1", "v2", "v1"):  # warm-up: allocator pools, lazy imports, first trace
        swap_to(version)
    tensors, rss = _live_tensors(), _rss_mib()
    swaps = 16
    for i in range(swaps):
        swap_to("v2" if i % 2 == 0 else "v1")
    grown_tensors, grown_rss = _live_tensors() - tensors, _rss_mib() - rss
    service.stop()
    assert service.swaps == swaps + 4
    assert grown_tensors <= 2, f"{grown_tensors} more live tensors after {swaps} swaps"
    assert grown_rss < 20, f"RSS grew by {grown_rss:.1f} MiB over {swaps} swaps"


def test_health_degrades_while_the_registry_hangs(registry, tmp_path):
    """A registry that hangs raises nothing: /health must still say that the champion has not been read for a
    while (age of the last successful poll, how long the current one has been running), then recover."""
    from trajet.serve import create_app, serve_in_thread

    service = _service(registry, tmp_path, poll_stale_after=0.5)
    release = threading.Event()
    read = service.registry.champion

    def hanging_champion():
        release.wait(timeout=60)
        return read()

    with serve_in_thread(create_app(service)) as url, httpx.Client(base_url=url) as client:
        _wait_for(lambda: client.get("/health").json()["status"] == "ok", what="polls succeeding")
        service.registry.champion = hanging_champion
        try:
            health = _wait_for(
                lambda: (h := client.get("/health").json())["status"] == "degraded" and h, timeout=5,
                what="a degraded status while the registry hangs",
            )
            assert health["last_poll_age_s"] > 0.5 and health["poll_running_s"] > 0
            assert "no successful champion poll for" in health["problem"]
            assert health["version"] == "v1" and health["last_load_error"] is None
            assert client.post("/predict", json={"text": TEXT}).status_code == 200  # still serving
        finally:
            release.set()
        health = _wait_for(lambda: (h := client.get("/health").json())["status"] == "ok" and h, timeout=5,
                           what="recovery")
        assert health["last_poll_age_s"] < 0.5 and health["problem"] is None
