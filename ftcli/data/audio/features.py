"""A batch of waveforms → what the model reads, as its checkpoint's feature extractor makes it.

Raw-waveform extractors (wav2vec2, HuBERT, WavLM: ``Wav2Vec2FeatureExtractor``) are applied to the whole padded
batch as tensor operations (each clip normalised over its own samples, the attention mask where the extractor
gives one): what the extractor gives each clip, without a Python loop over clips. Any other extractor (the Audio
Spectrogram Transformer's filter banks, Whisper's log-mel) is called itself on the batch's clips.
"""

from __future__ import annotations

from typing import Any

from ftcli.data.audio.batches import attention_mask, normalise


def reads_waveforms(extractor: Any) -> bool:
    """Whether the model reads raw samples (``input_values`` [B, T]) rather than a spectrogram."""
    return any(c.__name__ == "Wav2Vec2FeatureExtractor" for c in type(extractor).__mro__)


def rate_of(extractor: Any) -> int:
    """The sample rate the model was trained on (its feature extractor's)."""
    return int(getattr(extractor, "sampling_rate", 16000))


def model_inputs(waves: Any, lengths: Any, extractor: Any) -> dict[str, Any]:
    """[B, T] zero-padded float32 clips with their ``lengths`` → the model's keyword inputs.

    Raises:
        ValueError: from the extractor itself (a clip too short for its window).
    """
    if reads_waveforms(extractor):
        pad_value = float(getattr(extractor, "padding_value", 0.0))
        if getattr(extractor, "do_normalize", False):
            values = normalise(waves, lengths, pad_value)
        else:
            values = waves.masked_fill(attention_mask(lengths, waves.shape[1]) == 0, pad_value)
        out = {"input_values": values}
        if getattr(extractor, "return_attention_mask", False):
            out["attention_mask"] = attention_mask(lengths, waves.shape[1])
        return out
    clips = [waves[i, : int(n)].numpy() for i, n in enumerate(lengths)]
    made = extractor(clips, sampling_rate=rate_of(extractor), return_tensors="pt", padding=True)
    return {k: v for k, v in made.items() if k in extractor.model_input_names}
