"""Serving bench: requests/s and p50/p99 latency of `trajet serve` on loopback at several concurrency levels,
and the service's resident memory (goal: < 1 GiB with the default model).

    python bench/serve.py                              # a CamemBERT-base-sized model (the production default)
    python bench/serve.py --model path/to/model_dir    # a trained model directory
    python bench/serve.py --arch mini --requests 400   # the CPU "mini" architecture

The service runs as a real `python -m trajet serve` subprocess; its memory is read from /proc. With no
--model, the bench builds a model of the default architecture with random weights: memory and latency
depend on the architecture and the input length, not on the weight values (no pretrained weights are
reachable offline). Each request carries one text of the kind the service answers. Prints numbers only.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEXTS = [
    "Je veux aller de Paris à Lyon en passant par Dijon",
    "un billet de Nantes à Brest pour demain matin s'il vous plaît",
    "Metz - Lyon par Nancy",
    "je pars d'Orléans pour aller au Havre avec un arrêt à Rouen le 3 mai",
]
ARCHS = {
    # camembert-base: what the reference (GPU) training preset fine-tunes
    "camembert-base": {"vocab_size": 32005, "hidden_size": 768, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514},
    "mini": {"vocab_size": 6000, "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 256, "max_position_embeddings": 258},
}


def build_model(arch: str, out: Path) -> Path:
    """Random-weight token classifier of the given architecture, with a BPE tokenizer trained on TEXTS."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import CamembertConfig, CamembertForTokenClassification, PreTrainedTokenizerFast

    from trajet.labels import ID2LABEL, LABEL2ID

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(TEXTS * 4, trainers.BpeTrainer(vocab_size=400, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>", cls_token="<s>", sep_token="</s>",
    ).save_pretrained(out)
    config = CamembertConfig(**ARCHS[arch], num_labels=len(ID2LABEL), id2label=dict(ID2LABEL),
                             label2id=dict(LABEL2ID), pad_token_id=1, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(0)
    CamembertForTokenClassification(config).save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process, MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def run_level(url: str, concurrency: int, n_requests: int) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(n_requests))

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                resp = client.post("/predict", json={"text": TEXTS[i % len(TEXTS)]})
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    errors += resp.status_code != 200

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "rps": len(latencies) / wall,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory, version or 'champion' (default: built)")
    parser.add_argument("--arch", choices=sorted(ARCHS), default="camembert-base")
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--batch-texts", type=int, default=64, help="trajet serve --batch-texts (1: no merging)")
    parser.add_argument("--threads", type=int, default=1, help="trajet serve --threads")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="trajet serve --backend")
    args = parser.parse_args()

    import httpx

    with tempfile.TemporaryDirectory(prefix="trajet-bench-serve-") as tmp:
        model = args.model or str(build_model(args.arch, Path(tmp) / "model"))
        port = free_port()
        env = {**os.environ, "TRAJET_HOME": os.environ.get("TRAJET_HOME", str(Path(tmp) / "home"))}
        cmd = [sys.executable, "-m", "trajet", "serve", "--model", model, "--port", str(port),
               "--log-level", "warning", "--batch-texts", str(args.batch_texts), "--threads", str(args.threads),
               "--backend", args.backend]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"service exited: {proc.stderr.read().decode()[-2000:]}")
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > 300:
                    raise SystemExit("service did not start within 300 s")
                time.sleep(0.2)
            ready_s = time.perf_counter() - started
            version = httpx.get(f"{url}/model").json()["version"]
            idle_rss, _ = rss_mib(proc.pid)
            run_level(url, 1, 5)  # warm-up
            print(f"model\t{version}\tarch\t{args.model and 'given' or args.arch}\tbatch_texts\t"
                  f"{args.batch_texts}\tthreads\t{args.threads}\tbackend\t{args.backend}")
            print(f"startup_s\t{ready_s:.1f}")
            print(f"rss_idle_mib\t{idle_rss:.0f}")
            print("concurrency\trequests\trps\tp50_ms\tp99_ms\terrors")
            for level in (int(c) for c in args.concurrency.split(",")):
                r = run_level(url, level, args.requests)
                print(f"{level}\t{args.requests}\t{r['rps']:.1f}\t{r['p50_ms']:.1f}\t{r['p99_ms']:.1f}\t{r['errors']}")
            rss, peak = rss_mib(proc.pid)
            print(f"rss_after_mib\t{rss:.0f}")
            print(f"rss_peak_mib\t{peak:.0f}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
