"""Rows to batches: tables and labels, text, words and CoNLL tags, images, question answering (SQuAD rows,
windows, decoding), relations (spans and entity markers), batching."""
