"""Audio: decoding to the model's rate, the clip cache, batches and batched augmentation."""
