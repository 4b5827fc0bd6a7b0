"""Tasks: a task is one inputs object × one objective object (``task.py``), built from one registry table
(``registry.py``). ``inputs/`` say how rows become model inputs and which model reads them; ``objectives/`` say what a
label is, the loss, the metrics and the predictions."""
