"""Rows to batches: tables and labels, text, words and CoNLL tags, images, batching."""
