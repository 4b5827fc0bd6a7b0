"""Reading tags: which prefixes each scheme writes, and a tag checked against the scheme the data says it uses."""

from __future__ import annotations

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import TAG_SCHEMES
from ftcli.metrics.entities import split_tag

PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES", "auto": "BIES"}  # what each scheme may write


def check_tag(tag: str, scheme: str, where: str) -> None:
    """A tag the scheme cannot write names itself, where it is, and what the scheme allows."""
    prefix, _ = split_tag(tag)
    allowed = PREFIXES[scheme]
    if prefix == "O" or prefix in allowed:
        return
    shape = ", ".join(f"{p}-<type>" for p in allowed)
    which = f"task.tag_scheme={scheme}" if scheme != "auto" else f"any of {', '.join(TAG_SCHEMES)}"
    raise FtcliError(f"tag {tag!r} {where} is not a tag of {which} (O, {shape}); fix the data or task.tag_scheme")
