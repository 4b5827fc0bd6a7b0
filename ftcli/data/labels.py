"""Labels as a model reads them: class ids and numbers to predict, with errors that name the row."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError


class LabelError(FtcliError):
    """Labels in the data that the label set does not hold."""


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _row_of(ds: Any, column: str, bad: Any) -> int:
    """1-based data row of the first ``bad`` value in ``column`` (what a user finds in the file)."""
    for i, v in enumerate(ds[column]):
        if v is bad or v == bad or (_empty(v) and _empty(bad)):  # NaN equals nothing: compare emptiness
            return i + 1
    return 0


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))


def class_names(ds: Any, column: str, where: str) -> list[str]:
    """Label names inferred from the train split: a ClassLabel's own names (hub datasets: cifar10's
    airplane … truck), ids 0…max for integer labels, else the sorted strings."""
    names = getattr(ds.features.get(column), "names", None)
    if names:
        return [str(n) for n in names]
    values = ds.unique(column)
    check_class_values(ds, column, values, where)
    if all(_is_int(v) or (isinstance(v, float) and v.is_integer()) for v in values):
        return [str(i) for i in range(int(max(values)) + 1)]
    return sorted(str(v) for v in values)


def check_class_values(ds: Any, column: str, values: list[Any], where: str) -> None:
    """Empty labels and fractional numbers are not classes: name the row and what it probably means."""
    for v in values:
        if _empty(v):
            raise LabelError(f"empty label in row {_row_of(ds, column, v)} of {where} (column '{column}')")
        if isinstance(v, float) and not v.is_integer():
            raise LabelError(
                f"label {v} in row {_row_of(ds, column, v)} of {where} is not a class id: the labels look like "
                "numbers to predict — for a regression use task=text_regression"
            )


def encode_class_labels(ds: Any, column: str, names: list[str], where: str) -> Any:
    """Add an integer "labels" column; strings map through ``names``, integer ids must be in range."""
    values = ds.unique(column)
    check_class_values(ds, column, values, where)
    index = {n: i for i, n in enumerate(names)}
    bad = [v for v in values if _class_id(v, index, len(names)) is None]
    if bad:
        row = _row_of(ds, column, bad[0])
        others = f" (nor are {', '.join(repr(v) for v in bad[1:5])})" if len(bad) > 1 else ""
        raise LabelError(
            f"label {bad[0]!r} in row {row} of {where} is outside the label set {names}{others}; "
            "set dataset.label_names, or fix the data"
        )
    mapping = {v: _class_id(v, index, len(names)) for v in values}
    return _map_labels(ds, column, mapping, where)


def _class_id(value: Any, index: dict[str, int], n: int) -> int | None:
    if isinstance(value, str):
        return index.get(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if _is_int(value):
        return int(value) if 0 <= value < n else None
    return None


def encode_float_labels(ds: Any, column: str, where: str) -> Any:
    """Add a float "labels" column (a regression target); anything that is not a number names its row."""
    mapping: dict[Any, float] = {}
    for v in ds.unique(column):
        try:
            number = float(v)
        except (TypeError, ValueError):
            number = math.nan
        if _empty(v) or math.isnan(number) or math.isinf(number):
            what = "empty label" if _empty(v) else f"label {v!r} is not a number"
            raise LabelError(f"{what} in row {_row_of(ds, column, v)} of {where} (column '{column}')")
        mapping[v] = number
    return _map_labels(ds, column, mapping, where)


def _map_labels(ds: Any, column: str, mapping: dict[Any, Any], where: str) -> Any:
    # an explicit fingerprint: datasets cannot always hash a closure and would then pick a random one,
    # which defeats every cache downstream
    key = json.dumps([ds._fingerprint, column, sorted(mapping.items(), key=str)], default=str)
    return ds.map(
        lambda b: {"labels": [mapping[v] for v in b[column]]},
        batched=True,
        desc=f"labels ({where})",
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
    )


def _natural(name: str) -> tuple[int, Any]:
    return (0, int(name)) if name.lstrip("-").isdigit() else (1, name)


def _row_lists(ds: Any, column: str, where: str) -> list[list[str]]:
    """Each row's labels as strings; a cell that is not a list names its row and the two ways to give labels."""
    rows = []
    for i, value in enumerate(ds[column]):
        if value is None:
            value = []
        if not isinstance(value, list):
            raise FtcliError(
                f"row {i + 1} of {where}: column '{column}' holds {value!r}, not a list of labels; a multi-label row "
                'is a list (JSON: ["sports", "music"]), or give one 0/1 column per label with dataset.label_columns'
            )
        rows.append([str(v) for v in value])
    return rows


def label_set(ds: Any, column: str, where: str) -> list[str]:
    """The labels that occur in the train split (numbers in numeric order, then names sorted)."""
    names = sorted({v for row in _row_lists(ds, column, where) for v in row}, key=_natural)
    if not names:
        raise FtcliError(f"column '{column}' of {where} holds no labels at all")
    return names


def _with_labels(ds: Any, key: list[Any], rows: list[list[float]], where: str) -> Any:
    digest = hashlib.sha256(json.dumps([ds._fingerprint, *key], default=str).encode()).hexdigest()[:16]
    return ds.map(
        lambda _, idx: {"labels": [rows[i] for i in idx]},
        with_indices=True,
        batched=True,
        desc=f"labels ({where})",
        new_fingerprint=digest,
    )


def encode_label_lists(ds: Any, column: str, names: list[str], where: str) -> Any:
    """A multi-hot ``labels`` column from a list column; a label outside ``names`` names its row."""
    index = {n: i for i, n in enumerate(names)}
    rows = []
    for i, values in enumerate(_row_lists(ds, column, where)):
        hot = [0.0] * len(names)
        for v in values:
            if v not in index:
                raise FtcliError(
                    f"label {v!r} in row {i + 1} of {where} is not one of the labels {names}; a multi-label row may "
                    "only hold labels of the training data: set dataset.label_names, or fix the data"
                )
            hot[index[v]] = 1.0
        rows.append(hot)
    return _with_labels(ds, ["lists", column, names], rows, where)


def _zero_one(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)) and value in (0, 1):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return float(value.strip().lower() in ("1", "true"))
    return None


def encode_label_columns(ds: Any, names: list[str], where: str) -> Any:
    """A multi-hot ``labels`` column from one 0/1 column per label; anything else names its row and column."""
    columns = {n: ds[n] for n in names}
    rows = []
    for i in range(len(ds)):
        hot = []
        for n in names:
            bit = _zero_one(columns[n][i])
            if bit is None:
                raise FtcliError(
                    f"value {columns[n][i]!r} in row {i + 1} of {where} (column '{n}') is not 0 or 1; "
                    "dataset.label_columns names one 0/1 column per label"
                )
            hot.append(bit)
        rows.append(hot)
    return _with_labels(ds, ["columns", names], rows, where)
