"""The names of the poolings ftcli's pooled head offers: declared once, here.

No imports on purpose: ``config.py`` reads these names to validate ``strategy.pooling`` without torch,
and ``modeling_ftcli.py`` imports them relatively, so transformers copies this file into every
checkpoint that carries the pooled head's code.
"""

POOLINGS = ("mean", "cls", "pooler", "last")
