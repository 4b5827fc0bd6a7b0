"""A WordPiece vocabulary trained on the data (BERT's recipe), for models initialised at random."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(texts: Iterable[str], vocab_size: int, folder: Path) -> Any:
    """Train an uncased WordPiece tokenizer (BERT's recipe) on ``texts``; saved to ``folder``."""

    texts = list(texts)
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    # The trainer numbers the "##x" pieces in hash-map order, which differs from run to run and breaks
    # ties between merges differently (huggingface/tokenizers#1794): the same text gave another vocab in
    # every process. Listed up front (sorted), they are numbered the same way every time.
    chars = {c for t in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(t)) for c in w}
    pieces = [f"##{c}" for c in sorted(chars)]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=[*SPECIALS, *pieces], show_progress=False)
    draft = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    draft.normalizer, draft.pre_tokenizer = normalizer, pre_tokenizer
    draft.train_from_iterator(texts, trainer)
    # the pieces were only listed to fix their numbers: rebuilt from the vocab, they are ordinary tokens
    tok = Tokenizer(models.WordPiece(draft.get_vocab(), unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    fast.save_pretrained(folder)
    return fast
