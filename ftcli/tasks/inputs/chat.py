"""Chat inputs for causal LMs: prompt/response rows, chat messages or plain text through the tokenizer's chat
template (``data/chat.py``), a causal LM (``models/causal.py``), training rows padded or packed, and evaluation that
both scores and generates (``data/answers.py``, ``runtime/generate.py``).

Evaluation is one forward pass per batch over left-padded prompts followed by their answers: it gives the loss on
the answer tokens, the next-token logits where every answer starts (label words scored without generating) and
the prompts' KV cache, from which the answers are then generated. The same prompts, through the same template,
are what ``ftcli predict``, ``ftcli chat`` and transformers' text-generation pipeline see.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer, TextStreamer

from ftcli.config.errors import FtcliError, first_line
from ftcli.config.schemas import DatasetConfig, ModelConfig
from ftcli.config.tasks.causal_lm import CausalLMConfig, GenerationConfig
from ftcli.data.answers import (
    PackedRows,
    collate_eval,
    collate_packed_rows,
    collate_train,
    encoded_columns,
    first_tokens,
    left_padded,
)
from ftcli.data.batching import loader, sorted_batches, training_batches
from ftcli.data.chat import IGNORE, ChatEncoder, SftOptions, check_utf8, infer_shape
from ftcli.data.tables import SPLITS, Raw, load_raw
from ftcli.data.text import lengths_of
from ftcli.models.architectures import Roles, standard_roles
from ftcli.models.causal import build_causal_lm, load_causal_tokenizer
from ftcli.models.loading import from_checkpoint
from ftcli.reporting.progress import console
from ftcli.runtime.generate import answer_text, end_ids, generate_ids
from ftcli.runtime.inference import infer
from ftcli.tasks.inputs.text import length_grouped, missing_tokenizer
from ftcli.tasks.objectives.sft import check_generated, sft_options
from ftcli.tasks.task import BatchPlan, Built, Card, Head, Loaded, TaskData

AUTO = "AutoModelForCausalLM"
CARD = Card(
    "text-generation",
    AUTO,
    example_call='run([{"role": "user", "content": "..."}], max_new_tokens=64)[0]["generated_text"][-1]',
    predict_example='prompt="..."',
)
ZEROSHOT = "zeroshot_"  # prefix of the untrained model's metrics beside a run's own


class ChatInputs:
    """Rows as conversations through the chat template; a causal LM; answers generated for evaluation."""

    kind = "text"
    card = CARD

    def __init__(self, cfg: CausalLMConfig, cache_dir: Path) -> None:
        check_generated(cfg)
        self.cfg = cfg
        self.cache_dir = cache_dir  # a tiny random model's vocabulary is trained once and kept there

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        c = self.cfg
        return [
            ("task.prompt_column", c.prompt_column),
            ("task.response_column", c.response_column),
            ("task.messages_column", c.messages_column),
            ("dataset.text_column", dataset.text_column),
            ("", "row"),  # each row's number in its file, for errors found once the tokenizer reads it
        ]

    def raw(self, dataset: DatasetConfig) -> Raw:
        """The splits as loaded, every text file checked to be UTF-8 first (one line naming file and line)."""
        if dataset.source == "files":
            for split in SPLITS:
                path = getattr(dataset, f"{split}_file")
                if path and Path(path).expanduser().suffix.lower() != ".parquet" and Path(path).expanduser().is_file():
                    check_utf8(Path(path).expanduser())
        return load_raw(dataset)

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        """The tokenizer, cutting at ``model.max_length`` (where packed rows end too)."""
        tokenizer = load_causal_tokenizer(model, self.cache_dir, training_text(data))
        tokenizer.model_max_length = int(model.max_length)
        return tokenizer

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        """Token ids, the loss's labels, where the last answer starts and its text; rows longer than
        ``model.max_length`` truncated or dropped (``task.overflow``), and the run says how many."""
        where = file_of(ds, data)
        options = sft_options(self.cfg, data.dataset.text_column, int(model.max_length))
        encoder = ChatEncoder(processor, options)
        shape = infer_shape(ds.column_names, options, where)
        encoded = encoder.encode_rows(iter(ds), where, shape, numbers=list(ds["row"]))
        console.print(f"{where}: {encoded.summary(options.max_length)}", highlight=False)
        if encoded.rows and not encoded.examples:
            raise FtcliError(
                f"{where}: every row is longer than model.max_length={model.max_length} (task.overflow=drop)"
            )
        return datasets.Dataset.from_dict(encoded_columns(encoded))

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        """Length-grouped padded rows, or (``task.packing``) rows packed into ``model.max_length`` tokens."""
        if not self.cfg.packing:
            return length_grouped(ds, plan, collate_train(processor.pad_token_id))
        packed = PackedRows(ds, int(processor.model_max_length))
        sampler = training_batches(
            np.asarray(packed.lengths), plan.batch_size, plan.processes, plan.seed, plan.max_tokens
        )
        return loader(packed, sampler, collate_packed_rows(processor.pad_token_id)), sampler

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        """Length-sorted evaluation batches; the label words' first tokens (when they tell the words apart)."""
        generate = bool(self.cfg.generate) and any(r.strip() for r in ds["reference"])
        collate = collate_eval(processor, first_tokens(ds), generate)
        lengths = lengths_of(ds)
        return loader(ds.add_column("idx", list(range(len(ds)))), sorted_batches(lengths, batch_size), collate)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        examples = int(batch["examples"].sum()) if "examples" in batch else len(batch["input_ids"])
        return examples, int(batch["tokens"].sum())

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        """The causal LM; its language-model head is pretrained, so it is part of the backbone (nothing is new)."""
        built = build_causal_lm(model, processor, head.seed, self.cache_dir)
        output = built.get_output_embeddings()
        lm_head = next((f"{n}." for n, m in built.named_modules() if m is output and n), "lm_head.")
        return Built(built, Roles((*standard_roles(built).backbone, lm_head)), "native")

    def outputs(self, model: Any, batches: Any, processor: Any, accelerator: Any = None) -> tuple[Any, Any]:
        """Per row: the generated answer, the answer tokens' summed NLL and count, the label word scored first
        (and the right one); the reference answers — in dataset order."""
        inner = accelerator.unwrap_model(model) if accelerator is not None else model
        inner.eval()
        synced = accelerator is not None and accelerator.num_processes > 1
        options, ends = self.cfg.generation, end_ids(inner, processor)

        def forward(batch: dict[str, Any]) -> dict[str, Any]:
            if accelerator is None:
                return answer_pass(inner, processor, batch, options, synced)
            with accelerator.autocast():
                return answer_pass(inner, processor, batch, options, synced)

        out = infer(forward, batches, accelerator)
        generated = int(out["generated"].max(initial=0)) > 0
        rows = [
            {
                "answer": answer_text(a, processor, ends, options.stop_strings) if generated else None,
                "nll": float(n),
                "tokens": int(t),
                "scored": int(s),
                "first": int(f),
            }
            for a, n, t, s, f in zip(out["answer"], out["nll"], out["tokens"], out["scored"], out["first"], strict=True)
        ]
        references = [reference_text(ids, processor) for ids in out["labels"]]
        return np.array(rows, dtype=object), np.array(references, dtype=object)

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        model = from_checkpoint(AUTO, folder, trust_remote_code, allow_pickle)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    def missing(self, folder: Path) -> str | None:
        return missing_tokenizer(folder)

    # ---- a generator is a zero-shot model: its label words come from the data -------------------
    def plain(self, model: Any) -> bool:
        return True  # no trained label set: the data's answers are its labels

    def relabel(
        self, model: Any, processor: Any, names: list[str], templates: list[str] | None = None, key: str = "templates"
    ) -> None:
        """Nothing to make: label words are read from the answers (and scored from the next-token logits)."""

    # ---- predict: prompts or conversations → answers -------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        if cfg.get("prompt") is None:
            raise FtcliError(
                'this checkpoint writes answers: give prompt="..." (or input=<file> of prompts or messages)'
            )
        return {"prompt": cfg.prompt}, ["prompt"]

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        return None  # a table: predict reads it

    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        """The conversations (``task.messages_column``), else the prompts (``task.prompt_column``)."""
        for column in (self.cfg.messages_column, self.cfg.prompt_column, cfg.get("text_column")):
            if column and column in rows[0]:
                return [column]
        raise FtcliError(
            f"input={where}: no column '{self.cfg.messages_column}' (chat messages) or '{self.cfg.prompt_column}' "
            f"(prompts); it has {', '.join(rows[0])} (text_column=<name> picks the prompts)"
        )

    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any:
        """Answers in row order, generated from length-sorted left-padded batches."""
        options = generation_options(self.cfg.generation, (loaded.command or {}).get("generation"), "generation")
        encoder = ChatEncoder(loaded.processor, sft_options(self.cfg, "text", int(loaded.model_cfg.max_length)))
        prompts = [asked(encoder, row.get(columns[0]), f"row {i + 1}") for i, row in enumerate(rows)]
        answers = generate_answers(loaded.model, loaded.processor, prompts, options, batch_size, loaded.accelerator)
        return np.array([{"answer": a} for a in answers], dtype=object)

    # ---- chat: one answer at a time, streamed ---------------------------------------------------
    def reply(self, loaded: Loaded, messages: list[dict[str, str]], stream: Callable[[str], None]) -> str:
        """The assistant's next turn after ``messages`` (the oldest turns left out when the conversation outgrows
        the model's context), each finished piece of text given to ``stream`` as it is written."""
        command = loaded.command or {}
        options = generation_options(self.cfg.generation, command.get("generation"), "generation")
        system_prompt = command.get("system_prompt") or self.cfg.system_prompt
        encoder = ChatEncoder(loaded.processor, SftOptions(max_length=1, system_prompt=str(system_prompt)))
        limit = context_limit(loaded.model) - options.max_new_tokens
        prompt = encoder.prompt_ids(messages)
        while len(prompt) > limit and len(messages) > 2:  # drop the oldest exchange
            messages = messages[2:]
            prompt = encoder.prompt_ids(messages)
        device = loaded.accelerator.device if loaded.accelerator is not None else loaded.model.device
        batch = {k: v.to(device) for k, v in left_padded([prompt], loaded.processor.pad_token_id).items()}
        streamer = Pieces(loaded.processor, stream)
        with torch.inference_mode():
            new = generate_ids(loaded.model, loaded.processor, batch, options, streamer=streamer)
        return answer_text(
            new[0].tolist(), loaded.processor, end_ids(loaded.model, loaded.processor), options.stop_strings
        )


class Pieces(TextStreamer):
    """transformers' streamer, its finished pieces of text handed to a function instead of printed."""

    def __init__(self, tokenizer: Any, stream: Callable[[str], None]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.stream = stream

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.stream(text)


def context_limit(model: Any) -> int:
    """The most tokens the model reads (its position embeddings), 2048 where the config does not say."""
    config = model.config
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048)


class UntrainedBaseline:
    """The model as it starts (zero-shot), measured on the validation split before any training: every run shows
    it beside its own numbers."""

    def __init__(self, inputs: ChatInputs, metrics: Any) -> None:
        self.inputs, self.metrics = inputs, metrics

    def measure(self, model: Any, processor: Any, names: list[str], validation: Any) -> dict[str, float]:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        batches = self.inputs.eval_loader(validation, processor, 32)
        metrics = self.metrics(*self.inputs.outputs(model, batches, processor), names)
        model.to("cpu").train()
        return {f"{ZEROSHOT}{k}": float(v) for k, v in metrics.items() if isinstance(v, float)}

    def note(self, baseline: dict[str, float]) -> str:
        keys = ("accuracy", "scored_accuracy", "json_f1", "exact_match", "rouge_l", "loss")
        shown = " · ".join(f"{k} {baseline[ZEROSHOT + k]:.4f}" for k in keys if ZEROSHOT + k in baseline)
        return f"zero-shot (the model before training, on validation): {shown}"

    def beside(self, metrics: dict[str, Any]) -> str:
        key = next((k for k in ("accuracy", "json_f1", "exact_match", "loss") if f"{ZEROSHOT}{k}" in metrics), None)
        return f" (zero-shot {key} {metrics[ZEROSHOT + key]:.4f})" if key else ""


# ---- one evaluation pass, generation, and what they read ------------------------------------------------


def answer_pass(
    model: Any, tokenizer: Any, batch: dict[str, Any], options: GenerationConfig, synced: bool
) -> dict[str, Any]:
    """One forward over prompts and answers (the loss, the first answer token scored, the prompts' cache), then the
    answers generated from that cache."""
    device = next(model.parameters()).device
    b = {k: v.to(device) for k, v in batch.items()}
    width, targets = int(b["prompt_width"][0]), b["targets"]
    early = bool((targets[:, :width] != IGNORE).any())  # learned tokens inside the prompts (earlier turns)
    keep = 0 if early else targets.shape[1] - width + 1  # 0: every position's logits
    out = model(
        input_ids=b["input_ids"],
        attention_mask=b["attention_mask"],
        position_ids=b["position_ids"],
        use_cache=True,
        logits_to_keep=keep,
    )
    logits = out.logits.float()
    gold = targets[:, -logits.shape[1] + 1 :] if logits.shape[1] > 1 else targets[:, :0]
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), gold.flatten(), ignore_index=IGNORE, reduction="none"
    ).view(gold.shape)
    result = {"nll": nll.sum(1), "tokens": (gold != IGNORE).sum(1)}
    result.update(scored(logits[:, width - 1 - (targets.shape[1] - logits.shape[1])], b, width))
    if int(b["generate"][0]):
        cache = out.past_key_values  # keep the prompts' first width - 1 positions (transformers 5: crop(-removed))
        cache.crop(-(cache.get_seq_length() - (width - 1)))
        prompts = {"input_ids": b["input_ids"][:, :width], "attention_mask": b["attention_mask"][:, :width]}
        key = int(b["idx"].min())
        result["answer"] = generate_ids(model, tokenizer, prompts, options, key, cache, synced)
        result["generated"] = torch.ones(len(nll), dtype=torch.long, device=device)
    else:
        result["answer"] = torch.full((len(nll), 1), IGNORE, dtype=torch.long, device=device)
        result["generated"] = torch.zeros(len(nll), dtype=torch.long, device=device)
    return result


def scored(next_logits: torch.Tensor, b: dict[str, Any], width: int) -> dict[str, torch.Tensor]:
    """The label word whose first token scores highest after each prompt, and the right one (-1: no scoring)."""
    rows = next_logits.shape[0]
    none = torch.full((rows,), -1, dtype=torch.long, device=next_logits.device)
    candidates = b["candidates"]
    if candidates.shape[1] == 0 or width >= b["input_ids"].shape[1]:
        return {"scored": none, "first": none}
    best = candidates.gather(1, next_logits.gather(1, candidates).argmax(1, keepdim=True))[:, 0]
    answered = b["labels"][:, 0] != IGNORE
    first = torch.where(answered, b["input_ids"][:, width], none)
    return {"scored": torch.where(answered, best, none), "first": first}


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    options: GenerationConfig,
    batch_size: int,
    accelerator: Any = None,
) -> list[str]:
    """Answers to token-id prompts, in their order (batches of similar length, left-padded)."""
    model.eval()
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    ends, answers = end_ids(model, tokenizer), [""] * len(prompts)
    lengths = np.asarray([len(p) for p in prompts])
    with torch.inference_mode():
        for idx in sorted_batches(lengths, batch_size):
            batch = {k: v.to(device) for k, v in left_padded([prompts[i] for i in idx], tokenizer.pad_token_id).items()}
            new = generate_ids(model, tokenizer, batch, options, key=min(idx))
            for i, ids in zip(idx, new.tolist(), strict=True):
                answers[i] = answer_text(ids, tokenizer, ends, options.stop_strings)
    return answers


def generation_options(base: Any, overrides: Any, key: str) -> GenerationConfig:
    """The task's generation settings with a command's overrides (``generation.max_new_tokens=16``; None keeps the
    checkpoint's): one line naming a bad value."""
    changed = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(GenerationConfig), base, changed)
    except Exception as e:  # a value of the wrong type
        raise FtcliError(f"{key}: {first_line(e)}; its keys: {', '.join(GenerationConfig.__dataclass_fields__)}") from e
    options: GenerationConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    if options.max_new_tokens < 1 or options.temperature <= 0 or not 0 < options.top_p <= 1:
        raise FtcliError(f"{key}: needs max_new_tokens >= 1, temperature > 0 and 0 < top_p <= 1")
    return options


def asked(encoder: ChatEncoder, value: Any, where: str) -> list[int]:
    """The prompt ids of a prompt or a conversation (one that ends with an answer asks for that answer again)."""
    if isinstance(value, str):
        return encoder.prompt_ids(value, where)
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        messages = [{"role": str(m.get("role")), "content": str(m.get("content") or "")} for m in value]
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        return encoder.prompt_ids(messages, where)
    raise FtcliError(f"{where}: a prompt is text or a list of {{role, content}} messages, not {value!r:.60}")


def reference_text(ids: np.ndarray, tokenizer: Any) -> str:
    return str(tokenizer.decode([int(t) for t in ids if t >= 0], skip_special_tokens=True)).strip()


def training_text(data: TaskData) -> list[str]:
    """The train split's text (what a random model's vocabulary is trained on)."""
    ds, texts = data.splits["train"], []
    for column in ds.column_names:
        if column in ("row", "labels"):
            continue
        for value in ds[column]:
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, list):
                texts += [str(m.get("content", "")) for m in value if isinstance(m, dict)]
    return texts


def file_of(ds: Any, data: TaskData) -> str:
    """The file (or hub split) a split's rows come from, for messages that name a row."""
    split = next((s for s, d in data.splits.items() if d is ds), "train")
    dataset = data.dataset
    path = getattr(dataset, f"{split}_file", None) or dataset.train_file
    if dataset.source == "files" and path:
        return Path(path).name
    return f"the {split} split of {dataset.path}"
