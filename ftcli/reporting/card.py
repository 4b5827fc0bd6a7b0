"""A checkpoint says what it is: a Hugging Face Hub model card (``README.md``) written into every checkpoint.

YAML front matter in the Hub's model-card format (base_model, datasets, pipeline_tag, tags, library_name,
model-index with the validation metrics), then a short text: what was fine-tuned on what, how, how well,
the ``ftcli train`` command that made it and how to load it. Pure Python (no torch): ``save_checkpoint``
calls it inside the atomic temporary folder, so the card is covered by the manifest like every other file.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

# Datasets ftcli ships, by option name: their Hub id and configuration (the card links what was used).
KNOWN_DATASETS = {
    "sst2": ("nyu-mll/glue", "sst2", "GLUE SST-2"),
    "digits": (None, None, "scikit-learn's digits (UCI optical handwritten digits)"),
}
# ftcli's metric names → the Hub's metric types (model-index) and a readable name.
METRIC_TYPES = {
    "accuracy": ("accuracy", "Accuracy", None),
    "top5_accuracy": ("accuracy", "Top-5 accuracy", {"k": 5}),
    "f1_macro": ("f1", "F1 (macro)", {"average": "macro"}),
    "precision_macro": ("precision", "Precision (macro)", {"average": "macro"}),
    "recall_macro": ("recall", "Recall (macro)", {"average": "macro"}),
    "mcc": ("matthews_correlation", "MCC", None),
    "loss": ("loss", "Loss", None),
    "pearson": ("pearsonr", "Pearson r", None),
    "spearman": ("spearmanr", "Spearman ρ", None),
    "mse": ("mse", "MSE", None),
    "mae": ("mae", "MAE", None),
    "f1": ("f1", "F1", None),  # NER: entity-level; GLUE MRPC/QQP: of the positive class
    "precision": ("precision", "Precision", None),
    "recall": ("recall", "Recall", None),
    "f1_micro": ("f1", "F1 (micro)", {"average": "micro"}),
    "subset_accuracy": ("accuracy", "Subset accuracy", None),
    "cer": ("cer", "CER", None),  # speech recognition: corpus-level character and word error rates
    "wer": ("wer", "WER", None),
}
STRATEGY_TEXT = {
    "full": "every weight trains",
    "feature_extract": "the backbone is frozen; only the new head trains",
    "partial": "the top encoder layers and the head train",
    "bitfit": "every bias and the head train (BitFit)",
    "lora": "LoRA matrices on the encoder's Linear (or Conv2d) layers and the head train; the checkpoint holds the "
    "merged weights",
    "gradual_unfreeze": "the head first, then one more layer group at a time, top down",
    "lp_ft": "the head alone first (linear probing), then everything",
}


def _get(cfg: Any, dotted: str, default: Any = None) -> Any:
    """``cfg.a.b`` for a DictConfig or a plain dict, ``default`` when any part is missing."""
    node = cfg
    for part in dotted.split("."):
        try:
            node = node[part]
        except Exception:  # missing, ??? (MissingMandatoryValue), not a mapping: the card says less, the save goes on
            return default
        if node is None:
            return default
    return node


def _is_hub_id(name: str) -> bool:
    """``org/name`` or ``name`` as the Hub spells ids; local paths are not (they mean nothing elsewhere)."""
    if not name or name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).expanduser().exists():
        return False
    return all(part and all(c.isalnum() or c in "-_." for c in part) for part in name.split("/"))


def train_command(run_cfg: Any = None) -> str | None:
    """The ``ftcli train ...`` command of this run: Hydra's task overrides when running under Hydra, else
    (a launched worker, a resumed run) the ones Hydra saved in the run dir; None when neither is known."""
    overrides: list[str] | None = None
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # not under Hydra: tests calling train(cfg), a worker process started by ftcli
        overrides = None
    if overrides is None or any(o.startswith("resume=") for o in overrides):  # the run's own first command
        saved = Path(str(_get(run_cfg, "output_dir", ""))) / ".hydra" / "overrides.yaml"
        try:
            overrides = [str(o) for o in yaml.safe_load(saved.read_text()) or []]
        except (OSError, yaml.YAMLError, TypeError):
            return None if overrides is None else _command(overrides)
    return _command(overrides)


def _command(overrides: list[str]) -> str:
    return " ".join(["ftcli", "train", *(shlex.quote(o) for o in overrides)])


def _dataset(run_cfg: Any) -> dict[str, Any]:
    """name, Hub id/config (or the file format for local files) and a line of text about the data."""
    ds = _get(run_cfg, "dataset", {})
    name = str(_get(ds, "name", "unknown"))
    if not ds:  # a checkpoint saved outside a run
        return {"name": name, "hub": None, "config": None, "type": "unknown", "text": "not recorded"}
    if name in KNOWN_DATASETS:
        hub_id, config, title = KNOWN_DATASETS[name]
        text = f"{title} (shipped with ftcli)"
        return {"name": title, "hub": hub_id, "config": config, "type": hub_id or name, "text": text}
    if _get(ds, "source") == "hub" and _get(ds, "path"):
        path, config = str(_get(ds, "path")), _get(ds, "config_name")
        hub = path if _is_hub_id(path) else None
        text = f"`{path}`" + (f" (configuration `{config}`)" if config else "")
        return {"name": path, "hub": hub, "config": config, "type": hub or "local", "text": text}
    files = [str(_get(ds, key)) for key in ("train_file", "validation_file") if _get(ds, key)]
    fmt = Path(files[0]).suffix.lstrip(".").lower() if files else "files"
    fmt = {"tsv": "csv", "jsonl": "json"}.get(fmt, fmt)  # the datasets builder that reads them
    text = "local files: " + ", ".join(f"`{Path(f).name}`" for f in files) if files else "local files"
    return {"name": name, "hub": None, "config": None, "type": fmt, "text": text}


def _metric_rows(metrics: dict[str, Any]) -> list[tuple[str, float, list[float] | None]]:
    ci = metrics.get("ci95") or {}
    return [
        (key, float(metrics[key]), ci.get(key))
        for key in METRIC_TYPES
        if isinstance(metrics.get(key), int | float) and not isinstance(metrics.get(key), bool)
    ]


def _front_matter(run_cfg: Any, metrics: dict[str, Any], data: dict[str, Any], title: str, tag: str) -> dict[str, Any]:
    base = str(_get(run_cfg, "model.name_or_path", ""))
    pretrained = _get(run_cfg, "model.init", "pretrained") != "random"
    strategy = _get(run_cfg, "strategy.name")
    meta: dict[str, Any] = {}
    if pretrained and _is_hub_id(base):
        meta["base_model"] = base
    if data["hub"]:
        meta["datasets"] = [data["hub"]]
    meta["pipeline_tag"] = tag
    meta["library_name"] = "transformers"
    meta["tags"] = ["ftcli", tag, *([str(strategy)] if strategy else [])]
    rows = _metric_rows(metrics)
    if rows:
        dataset: dict[str, Any] = {"name": data["name"], "type": data["type"], "split": "validation"}
        if data["config"]:
            dataset["config"] = data["config"]
        entries = []
        for key, value, _ in rows:
            kind, name, args = METRIC_TYPES[key]
            entry: dict[str, Any] = {"type": kind, "value": round(value, 6), "name": name}
            if args:
                entry["args"] = args
            entries.append(entry)
        task = {"type": tag, "name": tag.replace("-", " ").title()}
        meta["model-index"] = [{"name": title, "results": [{"task": task, "dataset": dataset, "metrics": entries}]}]
    return meta


def model_card(
    run_cfg: Any,
    metrics: dict[str, Any],
    command: str | None,
    *,
    labels: list[str] | None = None,
    trainable: tuple[int, int] | None = None,
    task: Any = None,
    pooling: str | None = None,
    remote: bool | None = None,
) -> str:
    """The text of a checkpoint's ``README.md``.

    Args:
        run_cfg: the run's resolved train config (None: a checkpoint written outside a run).
        metrics: the checkpoint's validation metrics; 95% intervals under ``ci95`` (``{"accuracy": [lo, hi]}``).
        command: the ``ftcli train ...`` command that produced it, if known.
        labels: class names in id order.
        trainable: (trainable, total) parameter counts, when known.
        task: the checkpoint's task (``tasks.task.Task``: its card, inputs and objective).
        pooling: the head's pooling as the model has it (None: the run config's).
        remote: whether the folder ships the model's code (``auto_map``; None: what the pooling implies).
    """
    tag = task.card.pipeline_tag if task is not None else "text-classification"
    pooling = pooling or _requested_pooling(run_cfg)
    remote = remote if remote is not None else (run_cfg is None or pooling != "native")
    strategy = _get(run_cfg, "strategy.name")
    data = _dataset(run_cfg)
    parts = ("ftcli", _get(run_cfg, "model.name", "model"), strategy, _get(run_cfg, "dataset.name"))
    title = "-".join(str(p) for p in parts if p)
    meta = _front_matter(run_cfg, metrics, data, title, tag)
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "", f"# {title}", ""]
    kind = tag.replace("-", " ")
    lines += [f"{'An' if kind[:1] in 'aeiou' else 'A'} {kind} model fine-tuned with ftcli.", ""]
    lines += _facts(run_cfg, data, metrics, trainable, _task_text(task, labels), pooling)
    lines += _metrics_table(metrics)
    if command:
        lines += ["## How it was trained", "", "```bash", command, "```", ""]
    lines += _how_to_load(task, remote)
    return "\n".join(lines)


def _task_text(task: Any, labels: list[str] | None) -> str:
    if task is not None:
        return str(task.objective.describe(task.inputs.kind, labels))
    return "text classification" + (f" into {len(labels)} classes" if labels else "")


def _requested_pooling(run_cfg: Any) -> str:
    """The pooling the run asked for (the strategy's, else the model's)."""
    return str(_get(run_cfg, "strategy.pooling") or _get(run_cfg, "model.pooling") or "native")


def _facts(
    run_cfg: Any,
    data: dict[str, Any],
    metrics: dict[str, Any],
    trainable: tuple[int, int] | None,
    task: str,
    pooling: str,
) -> list[str]:
    """Base model, dataset, task, strategy, trainable share, the checkpoint's step: one bullet each."""
    lines = []
    base = str(_get(run_cfg, "model.name_or_path", ""))
    if run_cfg is not None and _get(run_cfg, "model.init") == "random":
        sizes = _get(run_cfg, "model.config_overrides", {}) or {}
        shape = ", ".join(f"{k} {v}" for k, v in dict(sizes).items())
        lines.append(f"- **Base model:** none: a randomly initialised `{base}`{f' ({shape})' if shape else ''}")
    elif run_cfg is not None:
        lines.append(
            f"- **Base model:** [{base}](https://huggingface.co/{base})"
            if _is_hub_id(base)
            else f"- **Base model:** `{base}`"
        )
    if run_cfg is not None:
        sizes = (("training", "dataset.max_train_samples"), ("validation", "dataset.max_eval_samples"))
        subset = [f"{_get(run_cfg, key)} {split} examples" for split, key in sizes if _get(run_cfg, key)]
        lines.append(f"- **Dataset:** {data['text']}{' — a seeded subset: ' + ', '.join(subset) if subset else ''}")
    lines.append(f"- **Task:** {task}")
    strategy = _get(run_cfg, "strategy.name")
    if strategy:
        head = "the architecture's own head" if pooling == "native" else f"ftcli's pooled head ({pooling} pooling)"
        how = STRATEGY_TEXT.get(str(strategy), "")
        lr = _get(run_cfg, "strategy.lr")
        lines.append(
            f"- **Strategy:** `{strategy}`{': ' + how if how else ''}; {head}" + (f"; lr {lr:g}" if lr else "")
        )
    if trainable and trainable[1]:
        share = 100 * trainable[0] / trainable[1]
        lines.append(f"- **Trainable parameters:** {trainable[0]:,} of {trainable[1]:,} ({share:.2f}%)")
    step = metrics.get("step")
    if isinstance(step, int | float):
        lines.append(f"- **Checkpoint:** optimizer step {int(step)}")
    return [*lines, ""]


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    rows = _metric_rows(metrics)
    if not rows:
        return []
    n = metrics.get("examples")
    lines = [f"## Validation metrics{f' ({int(n)} examples)' if isinstance(n, int | float) else ''}", ""]
    with_ci = any(ci for _, _, ci in rows)
    lines.append("| metric | value |" + (" 95% interval |" if with_ci else ""))
    lines.append("| --- | ---: |" + (" ---: |" if with_ci else ""))
    for key, value, ci in rows:
        interval = f" {ci[0]:.4f} – {ci[1]:.4f} |" if ci else (" |" if with_ci else "")
        lines.append(f"| {METRIC_TYPES[key][1]} | {value:.4f} |{interval}")
    return [*lines, ""]


def _how_to_load(task: Any, remote: bool) -> list[str]:
    """The plain transformers lines that load it (and the pipeline), then ftcli's own commands."""
    card = task.card if task is not None else None  # a text classifier when nothing says otherwise
    tag = card.pipeline_tag if card else "text-classification"
    auto = card.auto_model if card else "AutoModelForSequenceClassification"
    processor = card.processor_class if card else "AutoTokenizer"
    trust = ", trust_remote_code=True" if remote else ""
    grouped = ', aggregation_strategy="simple"' if tag == "token-classification" else ""  # as ftcli predict groups
    example = card.example_call if card else 'run("a gorgeous, witty, seductive movie", truncation=True)'
    lines = [
        "## How to load it",
        "",
        "```python",
        f"from transformers import {auto}, {processor}, pipeline",
        "",
        'path = "<this folder>"',
        f"model = {auto}.from_pretrained(path{trust})",
        f"{'processor' if processor != 'AutoTokenizer' else 'tokenizer'} = {processor}.from_pretrained(path)",
        f'run = pipeline("{tag}", model=path{trust}{grouped})',
        f"print({example})",
        "```",
        "",
    ]
    if remote:
        lines += [
            "The model's code ships in this folder (ftcli's `modeling_ftcli*.py`, named by `auto_map` in",
            "`config.json`): `trust_remote_code=True` runs that file, and gives exactly ftcli's predictions.",
            "",
        ]
    predict = card.predict_example if card else 'text="..."'
    lines += [
        f"With ftcli: `ftcli predict checkpoint=<this folder> {predict}` · `ftcli eval checkpoint=<this folder>`.",
        "",
    ]
    return lines


def write_card(folder: Path, run_cfg: Any, metrics: dict[str, Any], model: Any = None, task: Any = None) -> Path:
    """Write ``folder/README.md`` for a checkpoint; labels and trainable counts are read off ``model``."""
    labels = trainable = None
    config = getattr(model, "config", None)
    id2label = getattr(config, "id2label", None) or {}
    if id2label:
        labels = [str(id2label[i]) for i in sorted(id2label)]
    if isinstance(metrics.get("trainable_params"), int) and isinstance(metrics.get("total_params"), int):
        trainable = (metrics["trainable_params"], metrics["total_params"])
    elif hasattr(model, "parameters"):
        seen: set[int] = set()
        counts = [0, 0]
        for p in model.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                counts[0] += p.numel() if p.requires_grad else 0
                counts[1] += p.numel()
        # a merged LoRA copy has nothing left that trains: its share is not known here
        trainable = (counts[0], counts[1]) if counts[0] else None
    pooled = getattr(config, "model_type", "") == "ftcli_pooled"  # ftcli's pooled head; any other: the model's own
    pooling = str(getattr(config, "pooling", "")) if pooled else ("native" if config is not None else None)
    written = Path(folder) / "config.json"  # save_pretrained wrote it, with auto_map when code ships beside it
    remote = bool(json.loads(written.read_text()).get("auto_map")) if written.is_file() else None
    path = Path(folder) / "README.md"
    card = model_card(
        run_cfg,
        metrics,
        train_command(run_cfg),
        labels=labels,
        trainable=trainable,
        task=task,
        pooling=pooling,
        remote=remote,
    )
    path.write_text(card)
    return path
