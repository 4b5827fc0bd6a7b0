"""Question answering data: reading SQuAD-style files, windows over long contexts, training positions and
decoding, with a WordPiece vocab trained on this file's own text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ftcli.config.errors import FtcliError
from ftcli.data.qa import answer_positions, check_qa_rows, decode_answers, read_qa_file, tokenize_windows
from ftcli.models.wordpiece import train_wordpiece

CONTEXT = "Maria Lopez joined Helix Biotech in Paris. She was born in Lima."
ROWS = [
    {
        "id": "q1",
        "title": "Helix",
        "context": CONTEXT,
        "question": "Who joined Helix Biotech?",
        "answers": {"text": ["Maria Lopez"], "answer_start": [0]},
    },
    {
        "id": "q2",
        "title": "Helix",
        "context": CONTEXT,
        "question": "Where was she born?",
        "answers": {"text": ["Lima", "in Lima"], "answer_start": [59, 56]},
    },
    {
        "id": "q3",
        "title": "Helix",
        "context": CONTEXT,
        "question": "Who founded it?",
        "answers": {"text": [], "answer_start": []},
    },
]


def squad_nested() -> dict:
    qas = [
        {"id": "q1", "question": "Who joined Helix Biotech?", "answers": [{"text": "Maria Lopez", "answer_start": 0}]},
        {
            "id": "q2",
            "question": "Where was she born?",
            "answers": [{"text": "Lima", "answer_start": 59}, {"text": "in Lima", "answer_start": 56}],
        },
        {"id": "q3", "question": "Who founded it?", "answers": [], "is_impossible": True},
    ]
    return {"version": "v2.0", "data": [{"title": "Helix", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}


def test_the_nested_squad_layout_reads_as_flat_rows(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(squad_nested()))
    assert read_qa_file(path) == ROWS


def test_flat_json_jsonl_and_both_csv_layouts_read_the_same_rows(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert read_qa_file(tmp_path / "a.json") == read_qa_file(tmp_path / "b.jsonl") == ROWS
    with (tmp_path / "c.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "title", "context", "question", "answers"])
        out.writerows([*list(r.values())[:4], json.dumps(r["answers"])] for r in ROWS)
    assert read_qa_file(tmp_path / "c.csv") == ROWS
    (tmp_path / "d.tsv").write_text(
        "id\tcontext\tquestion\tanswer_text\tanswer_start\n"
        f"q1\t{CONTEXT}\tWho joined Helix Biotech?\tMaria Lopez\t0\n"
        f"q3\t{CONTEXT}\tWho founded it?\t\t\n"
    )
    rows = read_qa_file(tmp_path / "d.tsv")
    assert [r["answers"] for r in rows] == [ROWS[0]["answers"], ROWS[2]["answers"]]


def test_rows_without_id_are_numbered_and_predict_input_needs_no_answers(tmp_path: Path) -> None:
    rows = check_qa_rows([{"question": "Who?", "context": CONTEXT}] * 2, "input", labelled=False)
    assert [r["id"] for r in rows] == ["1", "2"] and rows[0]["answers"] == {"text": [], "answer_start": []}


def _error(tmp_path: Path, rows: list[dict], name: str = "bad.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(FtcliError) as e:
        read_qa_file(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    return message


def test_an_answer_not_at_its_start_names_the_line_and_where_it_is(tmp_path: Path) -> None:
    bad = {**ROWS[0], "answers": {"text": ["Helix Biotech"], "answer_start": [18]}}
    message = _error(tmp_path, [ROWS[1], bad])
    assert message.startswith("line 2 of ")
    assert "'Helix Biotech' is not at answer_start=18 (the context there reads ' Helix Biotec')" in message
    assert "it occurs at 19" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"context": ""}, "a question with no context"),
        ({"context": None}, "a question with no context"),
        ({"question": "  "}, "the question is empty"),
        ({"answers": None}, "no answers"),
        ({"answers": {"text": ["Lima"], "answer_start": [500]}}, "answer_start=500 is outside the context"),
        ({"answers": {"text": ["Lima"], "answer_start": []}}, "1 answer texts but 0 answer_start values"),
        ({"answers": {"text": [""], "answer_start": [0]}}, "an empty answer text"),
        ({"is_impossible": True}, "is_impossible is true but answers are given"),
        ({"answers": {"text": ["Oslo"], "answer_start": [0]}}, "the context does not contain it"),
    ],
)
def test_bad_rows_are_one_line_errors(tmp_path: Path, change: dict, expected: str) -> None:
    message = _error(tmp_path, [{**ROWS[0], **change}])
    assert message.startswith("line 1 of ") and expected in message


def test_a_repeated_id_names_both_rows(tmp_path: Path) -> None:
    message = _error(tmp_path, [ROWS[0], ROWS[1], {**ROWS[2], "id": "q1"}])
    assert message.startswith("line 3 of ") and "already the id of line 1" in message


def test_nested_errors_name_the_question(tmp_path: Path) -> None:
    doc = squad_nested()
    doc["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = 3
    path = tmp_path / "train.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FtcliError, match=r"question 'q2' \(data\[0\]\.paragraphs\[0\]\.qas\[1\]\) of .*train\.json"):
        read_qa_file(path)


def test_csv_answers_that_are_not_json(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text(f'context,question,answers\n"{CONTEXT}",Who?,Maria Lopez\n')
    with pytest.raises(FtcliError, match=r"row 1 of .*bad\.csv: the answers cell is not JSON"):
        read_qa_file(tmp_path / "bad.csv")


# ---------------------------------------------------------------- windows

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec"
LONG = WORDS + " romeo sierra tango"  # 20 words, one token each with the vocab below
QUESTION = "who said it ?"  # 4 tokens: with [CLS] and two [SEP], 16 - 7 = 9 context tokens per window


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    texts = [LONG, QUESTION, CONTEXT, "Café Müller  opened in São Paulo, (near the river)."] * 20
    tok = train_wordpiece(texts, 400, tmp_path_factory.mktemp("vocab"))
    assert len(tok(LONG, add_special_tokens=False)["input_ids"]) == 20  # each word is one token
    return tok


def char_of_word(k: int) -> int:
    return len(" ".join(LONG.split()[:k])) + (1 if k else 0)


def row_for(words: str) -> dict:
    start = LONG.index(words)
    return {"id": words, "context": LONG, "question": QUESTION, "answers": {"text": [words], "answer_start": [start]}}


def test_windows_overlap_by_doc_stride_and_offsets_cover_the_context_only(tokenizer) -> None:
    w = tokenize_windows(tokenizer, ["  " + QUESTION], [LONG], max_length=16, doc_stride=3)
    # 9 context tokens a window, 3 shared with the previous one: words 0-8, 6-14, 12-19
    firsts = [next(o for o in offsets if o is not None)[0] for offsets in w["offset_mapping"]]
    assert firsts == [char_of_word(0), char_of_word(6), char_of_word(12)]
    assert w["example_index"] == [0, 0, 0] and w["cls_index"] == [0, 0, 0]
    assert [len(ids) for ids in w["input_ids"]] == [16, 16, 15]
    assert all(o is None for o in w["offset_mapping"][0][:6])  # [CLS], the question, [SEP]


def test_an_answer_in_the_second_window_only(tokenizer) -> None:
    rows = [row_for("kilo lima")]  # words 10-11: outside 0-8 and 12-19
    w = tokenize_windows(tokenizer, [QUESTION], [LONG], 16, 3)
    # window 1 starts at word 6 after [CLS] + 4 question tokens + [SEP]: word k sits at position k
    assert answer_positions(w, rows) == ([0, 10, 0], [0, 11, 0])


def test_an_answer_across_a_window_edge_is_labelled_where_it_is_whole(tokenizer) -> None:
    rows = [row_for("hotel india juliet")]  # words 7-9: window 0 ends at word 8
    w = tokenize_windows(tokenizer, [QUESTION], [LONG], 16, 3)
    assert answer_positions(w, rows) == ([0, 7, 0], [0, 9, 0])


def test_an_answer_in_two_windows_is_labelled_in_both(tokenizer) -> None:
    rows = [row_for("mike november")]  # words 12-13: in window 1 (at 12-13) and window 2 (at 6-7)
    w = tokenize_windows(tokenizer, [QUESTION], [LONG], 16, 3)
    assert answer_positions(w, rows) == ([0, 12, 6], [0, 13, 7])


def test_positions_give_back_every_answer_exactly(tokenizer) -> None:
    text = "Café Müller  opened in São Paulo, (near the river)."
    spans = ["Café Müller", "Müller", "São Paulo", "São Paulo,", "(near the river)", "river", "opened in São"]
    rows = [
        {"context": text, "question": QUESTION, "answers": {"text": [s], "answer_start": [text.index(s)]}}
        for s in spans
    ]
    rows.append(row_for("hotel india juliet"))
    w = tokenize_windows(tokenizer, [r["question"] for r in rows], [r["context"] for r in rows], 16, 3)
    starts, ends = answer_positions(w, rows)
    found = {i: set() for i in range(len(rows))}
    for offsets, row, s, e, cls in zip(
        w["offset_mapping"], w["example_index"], starts, ends, w["cls_index"], strict=True
    ):
        if s != cls:
            found[row].add(rows[row]["context"][offsets[s][0] : offsets[e][1]])
    assert found == {i: {r["answers"]["text"][0]} for i, r in enumerate(rows)}


def test_unanswerable_questions_point_at_cls(tokenizer) -> None:
    rows = [{"context": LONG, "question": QUESTION, "answers": {"text": [], "answer_start": []}}]
    w = tokenize_windows(tokenizer, [QUESTION], [LONG], 16, 3)
    assert answer_positions(w, rows) == ([0, 0, 0], [0, 0, 0])


def test_a_question_that_leaves_no_room_is_a_one_line_error(tokenizer) -> None:
    with pytest.raises(FtcliError, match=r"question 1 .* has 4 tokens: .* leaves 3 for the context .* doc_stride=3"):
        tokenize_windows(tokenizer, [QUESTION], [LONG], max_length=10, doc_stride=3)


# ---------------------------------------------------------------- decoding


def oracle_logits(w: dict, starts: list[int], ends: list[int], cls_score: float = 1.0) -> tuple[list, list]:
    """Logits that put 5 on each window's labelled start and end, ``cls_score`` on CLS, 0 elsewhere."""
    start_logits, end_logits = [], []
    for ids, s, e in zip(w["input_ids"], starts, ends, strict=True):
        a, b = np.zeros(len(ids)), np.zeros(len(ids))
        a[0] = b[0] = cls_score
        if s:
            a[s], b[e] = 5.0, 5.0
        start_logits.append(a)
        end_logits.append(b)
    return start_logits, end_logits


def test_decoding_oracle_logits_gives_the_answers_back_across_windows(tokenizer) -> None:
    rows = [row_for(a) for a in ("kilo lima", "hotel india juliet", "mike november", "alpha")]
    w = tokenize_windows(tokenizer, [r["question"] for r in rows], [r["context"] for r in rows], 16, 3)
    s, e = oracle_logits(w, *answer_positions(w, rows))
    out = decode_answers(w, s, e, [r["context"] for r in rows], n_best=5, max_answer_length=10)
    assert [o["answer"] for o in out] == ["kilo lima", "hotel india juliet", "mike november", "alpha"]
    assert [(o["start"], o["end"]) for o in out] == [(char_of_word(10), char_of_word(12) - 1)] + [
        (r["answers"]["answer_start"][0], r["answers"]["answer_start"][0] + len(r["id"])) for r in rows[1:]
    ]
    assert all(o["score"] == 10.0 and o["null_score"] == 2.0 for o in out)


# One hand-made window: [CLS] q [SEP-less] then three context words; positions 1 and 5 are not context.
HAND = {"offset_mapping": [[None, None, (0, 5), (6, 11), (12, 17), None]], "example_index": [0], "cls_index": [0]}
START = [[1.0, 9.0, 3.0, 2.0, 0.0, 0.0]]
END = [[1.0, 0.0, 0.0, 4.0, 2.0, 8.0]]


def test_decoding_keeps_spans_inside_the_context_in_order_and_short_enough() -> None:
    # allowed pairs (start ≤ end, both context): (2,3) 7, (3,3) 6, (2,4) 5, (3,4) 4, (2,2) 3, (4,4) 2
    (out,) = decode_answers(HAND, START, END, ["Maria Lopez Helix"], n_best=20, max_answer_length=30)
    assert (out["text"], out["score"], out["null_score"], out["score_diff"]) == ("Maria Lopez", 7.0, 2.0, -5.0)
    assert [c["text"] for c in out["n_best"]][:3] == ["Maria Lopez", "Lopez", "Maria Lopez Helix"]
    (short,) = decode_answers(HAND, START, END, ["Maria Lopez Helix"], max_answer_length=1)
    assert (short["text"], short["score"]) == ("Lopez", 6.0)
    # only the 2 best starts (1, 2) and ends (5, 3) are paired: (2, 3) is the one allowed pair
    (few,) = decode_answers(HAND, START, END, ["Maria Lopez Helix"], n_best=2)
    assert [c["text"] for c in few["n_best"]] == ["Maria Lopez"]


def test_the_null_score_is_the_lowest_cls_score_over_windows_and_the_threshold_abstains(tokenizer) -> None:
    rows = [row_for("kilo lima")]
    w = tokenize_windows(tokenizer, [QUESTION], [LONG], 16, 3)
    s, e = oracle_logits(w, *answer_positions(w, rows), cls_score=6.0)
    s[1][0], e[1][0] = 4.0, 4.0  # window 1's CLS: 8, the others' 12 → null score 8; the span scores 10
    (out,) = decode_answers(w, s, e, [LONG], null_threshold=0.0)
    assert (out["answer"], out["null_score"], out["score_diff"]) == ("kilo lima", 8.0, -2.0)
    (out,) = decode_answers(w, s, e, [LONG], null_threshold=-3.0)
    assert (out["answer"], out["text"]) == ("", "kilo lima")  # −2 > −3: abstains, the best span is kept
