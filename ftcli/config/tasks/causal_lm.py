"""The ``task=causal_lm`` schema: supervised fine-tuning of a causal LM (a generator) on prompt/response rows, chat
messages or plain text, and how it writes answers (evaluation, ``ftcli predict``, ``ftcli chat``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ftcli.config.schemas import TaskConfig, opt


@dataclass
class GenerationConfig:
    """How a causal LM writes an answer (evaluation, ``ftcli predict``, ``ftcli chat``)."""

    max_new_tokens: int = opt(64, ge=1)  # the answer's length limit in tokens (it stops earlier at end-of-turn)
    do_sample: bool = False  # greedy decoding unless true
    temperature: float = opt(1.0, gt=0.0)  # do_sample: < 1 sharpens the distribution, > 1 flattens it
    top_p: float = opt(1.0, gt=0.0, le=1.0)  # do_sample: nucleus sampling (1.0: the whole vocabulary)
    seed: int = 0  # do_sample: the same seed draws the same answers
    stop_strings: list[str] = opt(factory=list)  # the answer ends before the first of these (besides end-of-turn)


@dataclass
class CausalLMConfig(TaskConfig):
    """Supervised fine-tuning of a causal LM (a generator) on prompt/response rows, chat messages or plain text."""

    option = "causal_lm"
    # loss/perplexity: next-token NLL of the answers; the rest compare generated answers with the references:
    # accuracy (the first label word the answer names, when the references are a few label words), exact_match and
    # token_f1 (SQuAD's normalisation), rouge_l, json_f1 (items of JSON-list answers, each exact), and
    # scored_accuracy (the label word with the highest next-token logit: one forward pass, no generation)
    metrics = ("loss", "perplexity", "accuracy", "exact_match", "token_f1", "rouge_l", "json_f1", "scored_accuracy")
    prompt_column: str = "prompt"  # rows of a prompt and a response ...
    response_column: str = "response"
    messages_column: str = "messages"  # ... or chat messages, a list of {role, content}; else dataset.text_column
    # "default": what the chat template does without one (SmolLM2's adds its own), "none": no system turn, or the text
    system_prompt: str = "default"
    train_on_prompt: bool = False  # the loss covers every token, not only the response / assistant turns
    overflow: str = opt("truncate", choices=("truncate", "drop"))  # rows longer than model.max_length
    packing: bool = False  # training rows packed into model.max_length (position ids restart per example)
    generate: bool = True  # evaluation writes answers (false: loss and perplexity only, no generation)
    baseline: bool = True  # measure the model before training on the validation split (zero-shot), shown beside
    generation: GenerationConfig = field(default_factory=GenerationConfig)
