"""``ftcli predict``'s one-input keys, one per kind of input (``text="…"``, ``image=<file>`` …): the predict command
checks that exactly one is given (or ``input=<file>``), and the CLI, before anything heavy loads, knows such a run
only prints its answer. A task with a new kind of input adds its key here and to ``PredictConfig``."""

ONE_INPUT = ("text", "image", "audio", "question", "prompt")
