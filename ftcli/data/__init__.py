"""Reading and shaping data: tables, text, words, images, audio, question answering, relations, batching."""
