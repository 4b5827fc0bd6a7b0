"""Make ftcli/assets/topics: a multi-label set whose labels follow a known rule.

Each text joins one to three clauses, each about one topic (sports, politics, science, food, music,
weather), sometimes with a clause about nothing in particular; its labels are exactly the topics of its
clauses (a text of neutral clauses only has no label). Deterministic: running it again writes the same files.

    python scripts/make_topics.py            # → ftcli/assets/topics/{train,dev}.jsonl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "ftcli" / "assets" / "topics"
CLAUSES = {
    "sports": [
        "the striker scored twice in the second half",
        "our goalkeeper saved a penalty in extra time",
        "the tennis final went to five long sets",
        "the marathon runners crossed the finish line at dawn",
        "the coach benched his captain for the derby",
        "the relay team broke the national record",
        "the referee showed two red cards before half time",
        "the cyclists climbed the mountain stage in the rain",
        "the boxer defended her title on points",
        "the league table changed after the weekend fixtures",
    ],
    "politics": [
        "parliament passed the budget after a late vote",
        "the minister resigned over the leaked memo",
        "voters queued for hours at the polling stations",
        "the senate blocked the proposed tax reform",
        "the opposition leader called for early elections",
        "the coalition talks collapsed on friday",
        "the mayor promised new housing in her campaign",
        "the president vetoed the spending bill",
        "the ambassador was recalled after the dispute",
        "a referendum on the new constitution was announced",
    ],
    "science": [
        "the telescope captured light from a distant galaxy",
        "researchers sequenced the genome of the rare orchid",
        "the physicists measured the particle's mass again",
        "a new vaccine entered its final clinical trial",
        "the chemists synthesised a stable new molecule",
        "the probe sent back images of a frozen moon",
        "the lab published its results on quantum sensors",
        "geologists dated the fossil to the late jurassic",
        "the study found bacteria living deep under the ice",
        "engineers tested a battery that charges in minutes",
    ],
    "food": [
        "the bakery sold out of sourdough by noon",
        "she cooked a spicy lentil curry for dinner",
        "the chef added fresh basil to the tomato sauce",
        "we shared a plate of grilled sardines and bread",
        "the new restaurant serves handmade dumplings",
        "he roasted the vegetables with garlic and thyme",
        "the market stall had ripe peaches and figs",
        "the soup needed more salt and a little cream",
        "the pastry chef glazed the lemon tart",
        "they ordered noodles from the night market",
    ],
    "music": [
        "the orchestra rehearsed the symphony all afternoon",
        "the band released a new album on friday",
        "she played the cello solo without a score",
        "the festival crowd sang every chorus",
        "the jazz trio improvised for an hour",
        "the choir performed a requiem in the cathedral",
        "the guitarist broke a string during the encore",
        "the singer's ballad topped the charts",
        "the pianist practised scales before the recital",
        "the drummer kept perfect time through the set",
    ],
    "weather": [
        "heavy rain flooded the valley overnight",
        "a heatwave pushed temperatures past forty degrees",
        "the forecast warned of snow on the high roads",
        "strong winds tore the tiles from the roofs",
        "thick fog delayed flights at the airport",
        "a thunderstorm knocked out power across town",
        "the drought left the reservoir half empty",
        "hail damaged cars in the supermarket car park",
        "the first frost of the year covered the fields",
        "a tropical storm is moving toward the coast",
    ],
}
NEUTRAL = [
    "it was a tuesday like any other",
    "my neighbour mentioned it on the stairs",
    "nobody in the office seemed surprised",
    "the news came through late in the evening",
    "I read about it on the train home",
    "people were talking about it all week",
    "the details were still unclear this morning",
    "we heard the story from a friend",
]
JOINS = [" and ", ", while ", "; meanwhile ", ", and then ", " — also, "]
TOPICS = list(CLAUSES)


def example(rng: random.Random) -> dict[str, object]:
    """One to three topic clauses (distinct topics, or none), maybe a neutral clause, in random order."""
    k = rng.choices([0, 1, 2, 3], weights=[1, 5, 4, 2])[0]
    topics = rng.sample(TOPICS, k)
    parts = [rng.choice(CLAUSES[t]) for t in topics]
    if k == 0 or rng.random() < 0.3:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(NEUTRAL))
    text = parts[0]
    for part in parts[1:]:
        text += rng.choice(JOINS) + part
    return {"text": text[0].upper() + text[1:] + ".", "labels": sorted(topics, key=TOPICS.index)}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", 3000, 1), ("dev", 500, 2)):
        rng = random.Random(seed)
        rows = [example(rng) for _ in range(n)]
        (OUT / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{OUT / name}.jsonl: {n} rows")


if __name__ == "__main__":
    main()
