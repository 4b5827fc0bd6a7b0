"""Relation extraction data: the three row layouts, entity markers and their positions, one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ftcli.config.errors import FtcliError
from ftcli.data.relations import (
    Span,
    check_relation_row,
    check_relation_rows,
    mark,
    marker_seed_text,
    marker_vocabulary,
    parse_marked_text,
    read_relation_file,
    start_marker_positions,
)
from ftcli.models.wordpiece import train_wordpiece

TACRED = {
    "id": "r1",
    "token": ["Maria", "Lopez", "joined", "Helix", "Biotech", "in", "2019", "."],
    "subj_start": 0,
    "subj_end": 1,
    "obj_start": 3,
    "obj_end": 4,
    "subj_type": "PER",
    "obj_type": "ORG",
    "relation": "per:employee_of",
}
TEXT = "Maria Lopez joined Helix Biotech in 2019 ."
OFFSETS = {
    "id": "r1",
    "text": TEXT,
    "subj_char_start": 0,
    "subj_char_end": 11,
    "obj_char_start": 19,
    "obj_char_end": 32,
    "subj_type": "PER",
    "obj_type": "ORG",
    "relation": "per:employee_of",
}


def test_token_rows_become_character_spans_of_the_joined_text() -> None:
    ex = check_relation_row(TACRED, "row 1")
    assert ex.text == TEXT and ex.relation == "per:employee_of"
    assert (ex.subj, ex.obj) == (Span(0, 11, "PER"), Span(19, 32, "ORG"))
    assert (ex.subj_tokens, ex.obj_tokens) == ((0, 1), (3, 4))
    assert check_relation_row(OFFSETS, "row 1").subj == ex.subj


def test_plain_markers_in_text_and_tokens() -> None:
    marked = mark(check_relation_row(TACRED, "row 1"), "plain")
    assert marked.text == "[S] Maria Lopez [/S] joined [O] Helix Biotech [/O] in 2019 ."
    assert (marked.subj_at, marked.obj_at) == (0, 28)
    assert marked.tokens == (
        "[S]",
        "Maria",
        "Lopez",
        "[/S]",
        "joined",
        "[O]",
        "Helix",
        "Biotech",
        "[/O]",
        "in",
        "2019",
        ".",
    )
    assert (marked.subj_token, marked.obj_token) == (0, 5)
    assert " ".join(marked.tokens) == marked.text  # the two forms agree
    assert mark(check_relation_row(OFFSETS, "row 1"), "plain").text == marked.text


def test_typed_markers_with_the_object_first() -> None:
    row = {
        "token": ["Helix", "hired", "Maria", "Lopez"],
        "subj_start": 2,
        "subj_end": 3,
        "obj_start": 0,
        "obj_end": 0,
        "subj_type": "PER",
        "obj_type": "ORG",
        "relation": "per:employee_of",
    }
    marked = mark(check_relation_row(row, "row 1"), "typed")
    assert marked.text == "[O:ORG] Helix [/O:ORG] hired [S:PER] Maria Lopez [/S:PER]"
    assert (marked.subj_at, marked.obj_at) == (29, 0)
    assert (marked.subj_token, marked.obj_token) == (4, 0)
    assert marked.text[marked.subj_at :].startswith("[S:PER]")


def test_marked_text_input() -> None:
    text, subj, obj = parse_marked_text("[S]Maria Lopez[/S] joined [O]Helix[/O]")
    assert (text, subj, obj) == ("Maria Lopez joined Helix", Span(0, 11), Span(19, 24))
    # typed, spaces inside the markers, closing marker untyped: " Maria Lopez " at 0..13 trims to 1..12
    text, subj, obj = parse_marked_text("[S:PER] Maria Lopez [/S:PER] joined [O:ORG]Helix[/O]")
    assert (text, subj, obj) == (" Maria Lopez  joined Helix", Span(1, 12, "PER"), Span(21, 26, "ORG"))
    ex = check_relation_row({"text": "[O]Helix[/O] hired [S]Maria[/S] ."}, "input", labelled=False)
    assert (ex.text[ex.subj.start : ex.subj.end], ex.text[ex.obj.start : ex.obj.end], ex.relation) == (
        "Maria",
        "Helix",
        None,
    )


def test_marking_and_parsing_give_the_same_entities_back() -> None:
    ex = check_relation_row(TACRED, "row 1")
    text, subj, obj = parse_marked_text(mark(ex, "typed").text)
    assert (text[subj.start : subj.end], subj.type) == ("Maria Lopez", "PER")
    assert (text[obj.start : obj.end], obj.type) == ("Helix Biotech", "ORG")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"obj_end": 8}, "the object span 3..8 is outside the sentence's tokens 0..7"),
        ({"subj_start": -1}, "the subject span -1..1 is outside"),
        ({"subj_end": -1, "subj_start": 0}, "the subject span 0..-1 is empty"),
        ({"obj_start": 1, "obj_end": 3}, "the subject (tokens 0..1) and the object (tokens 1..3) overlap"),
        ({"token": []}, "an empty sentence"),
        ({"relation": None}, "no relation"),
        ({"obj_start": "x"}, "obj_start='x' is not a position"),
        ({"subj_type": "ORG NAME"}, "subj_type='ORG NAME' cannot name a marker"),
    ],
)
def test_bad_token_rows(change: dict, expected: str) -> None:
    with pytest.raises(FtcliError, match="^line 4 of train.jsonl: ") as e:
        check_relation_row({**TACRED, **change}, "line 4 of train.jsonl")
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({**OFFSETS, "obj_char_end": 99}, "the object span [19, 99) is outside the sentence (42 characters)"),
        ({**OFFSETS, "subj_char_end": 0}, "the subject span [0, 0) is empty"),
        ({**OFFSETS, "subj_char_start": 5, "subj_char_end": 6}, "the subject span [5, 6) is empty"),  # a space
        ({**OFFSETS, "obj_char_start": 6}, "the subject [0, 11) 'Maria Lopez' and the object [6, 32) "),
        ({"text": "[S]Maria[/S] joined Helix", "relation": "x"}, "no [O]…[/O]"),
        (
            {"text": "[S]Maria joined [O]Helix[/O]", "relation": "x"},
            "[O] at character 16 opens inside the subject span",
        ),
        ({"text": "[S]Maria[/S] [S]Lopez[/S] [O]Helix[/O]", "relation": "x"}, "opens a second subject"),
        ({"text": "Maria[/S] [O]Helix[/O]", "relation": "x"}, "[/S] at character 5 closes no open [S] span"),
        ({"text": "[S]Maria[/S] [O]Helix", "relation": "x"}, "the object span opened by [O…] is never closed"),
        ({"text": "  ", "relation": "x"}, "no sentence"),
    ],
)
def test_bad_text_rows(row: dict, expected: str) -> None:
    with pytest.raises(FtcliError, match="^row 2 of dev.csv: ") as e:
        check_relation_row(row, "row 2 of dev.csv")
    assert expected in str(e.value)


def test_typed_markers_need_types_and_name_the_row() -> None:
    ex = check_relation_rows([{**TACRED, "subj_type": None}], "train.json")[0]
    assert mark(ex, "plain").text.startswith("[S] Maria")
    with pytest.raises(FtcliError, match=r"^row 1 of train.json: typed markers need the entity types"):
        mark(ex, "typed")
    with pytest.raises(FtcliError, match="marker=fancy"):
        mark(ex, "fancy")


def test_the_marker_vocabulary_and_seed_words() -> None:
    examples = check_relation_rows([TACRED, {**TACRED, "obj_type": "LOC", "subj_type": "ORG"}], "x")
    assert marker_vocabulary(examples, "typed") == [
        "[/O:LOC]",
        "[/O:ORG]",
        "[/S:ORG]",
        "[/S:PER]",
        "[O:LOC]",
        "[O:ORG]",
        "[S:ORG]",
        "[S:PER]",
    ]
    assert marker_vocabulary(examples, "plain") == ["[/O]", "[/S]", "[O]", "[S]"]
    assert [marker_seed_text(m) for m in ("[S:PER]", "[/S:PER]", "[O:CITY_OF_BIRTH]", "[O]")] == [
        "@ per",
        "@",
        "# city of birth",
        "#",
    ]


def test_start_markers_are_found_among_a_tokenizers_tokens(tmp_path: Path) -> None:
    tok = train_wordpiece([TEXT, "Helix hired Maria Lopez ."] * 10, 200, tmp_path)
    examples = check_relation_rows([TACRED], "x")
    tok.add_tokens(marker_vocabulary(examples, "typed"), special_tokens=True)
    marked = mark(examples[0], "typed")
    for ids in (
        tok(marked.text)["input_ids"],
        tok(list(marked.tokens), is_split_into_words=True)["input_ids"],
    ):
        tokens = tok.convert_ids_to_tokens(ids)
        s, o = start_marker_positions(tokens)
        assert (tokens[s], tokens[o]) == ("[S:PER]", "[O:ORG]")
        assert tokens[s + 1] == "maria" and tokens[o + 1] == "helix"
    cut = tok.convert_ids_to_tokens(tok(marked.text, truncation=True, max_length=6)["input_ids"])
    assert start_marker_positions(cut) is None  # the object marker did not fit


def test_files_in_every_layout(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([TACRED]))
    (tmp_path / "b.jsonl").write_text(json.dumps(OFFSETS) + "\n")
    with (tmp_path / "c.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["text", "relation"])
        out.writerow(["[S:PER]Maria Lopez[/S:PER] joined [O:ORG]Helix Biotech[/O:ORG] in 2019 .", "per:employee_of"])
    with (tmp_path / "d.tsv").open("w", newline="") as f:
        out = csv.writer(f, delimiter="\t")
        out.writerow(list(OFFSETS))
        out.writerow(list(OFFSETS.values()))
    found = [read_relation_file(tmp_path / n)[0] for n in ("a.json", "b.jsonl", "c.csv", "d.tsv")]
    assert {mark(ex, "typed").text for ex in found} == {
        "[S:PER] Maria Lopez [/S:PER] joined [O:ORG] Helix Biotech [/O:ORG] in 2019 ."
    }
    (tmp_path / "e.jsonl").write_text(json.dumps(TACRED) + "\n" + json.dumps({**TACRED, "obj_end": 9}) + "\n")
    with pytest.raises(FtcliError, match=r"^line 2 of .*e\.jsonl: the object span 3\.\.9 is outside"):
        read_relation_file(tmp_path / "e.jsonl")
