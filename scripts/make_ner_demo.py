"""Make ftcli/assets/ner_demo: a small English NER set (PER, ORG, LOC) in CoNLL format, IOB2 tags.

Sentences are hand-written frames whose slots take hand-written names of people, organisations and
places. The validation file uses names that never occur in training, and about a sixth of its frames are
frames training never sees, so a good score needs context, not memorised names. About one sentence in
eight has no entity. Deterministic: running it again writes the same files.

    python scripts/make_ner_demo.py          # → ftcli/assets/ner_demo/{train,dev}.conll
"""

from __future__ import annotations

import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "ftcli" / "assets" / "ner_demo"

FRAMES = [
    "{PER} joined {ORG} as chief engineer last spring .",
    "{PER} was born in {LOC} and moved to {LOC} at nineteen .",
    "The board of {ORG} met in {LOC} on Tuesday .",
    "{ORG} opened a new office in {LOC} this week .",
    "According to {PER} , the talks in {LOC} went well .",
    "{PER} and {PER} signed the agreement for {ORG} .",
    "Shares of {ORG} fell after {PER} resigned .",
    "Heavy snow closed the roads between {LOC} and {LOC} .",
    "{PER} won the final in {LOC} on Sunday .",
    "The museum in {LOC} bought a painting from {ORG} .",
    "{ORG} hired {PER} to run its operations in {LOC} .",
    "Police in {LOC} said {PER} had been released .",
    "{PER} told reporters that {ORG} would appeal .",
    "A spokesman for {ORG} declined to comment .",
    "Flights from {LOC} to {LOC} were cancelled because of fog .",
    "{PER} , a lawyer from {LOC} , represented the family .",
    "{ORG} and {ORG} announced a merger on Monday .",
    "The mayor of {LOC} , {PER} , opened the bridge .",
    "{PER} spent ten years at {ORG} before retiring .",
    "Thousands marched through {LOC} on Saturday .",
    "{PER} will visit {LOC} next month , {ORG} said .",
    "The report by {ORG} criticised the government of {LOC} .",
    "{PER} scored twice as {ORG} beat {ORG} .",
    "Farmers near {LOC} are worried about the drought .",
    "{PER} thanked {PER} for the invitation .",
    "{ORG} recalled thousands of cars sold in {LOC} .",
    "Our correspondent {PER} reports from {LOC} .",
    "{PER} studied physics in {LOC} .",
    "The festival in {LOC} attracted record crowds .",
    "{ORG} fined {ORG} for breaking the rules .",
    "{PER} has been named coach of {ORG} .",
    "Tourists in {LOC} can now visit the old harbour .",
    "{PER} , who founded {ORG} , died on Friday in {LOC} .",
    "The train from {LOC} arrived two hours late .",
    "{ORG} raised its forecast for the year .",
    "{PER} wrote to {ORG} asking for the files .",
    "Negotiators from {ORG} flew to {LOC} overnight .",
    "{PER} lost her seat to {PER} in the election .",
    "The new hospital in {LOC} is run by {ORG} .",
    "It rained all day and the match was postponed .",
    "Prices rose again in March , the figures showed .",
    "The committee will meet again next week .",
    "Nobody was hurt when the roof collapsed .",
    "{PER} praised the volunteers of {ORG} .",
    "{ORG} built the stadium outside {LOC} .",
    "Residents of {LOC} voted against the plan .",
    "{PER} met {PER} in {LOC} to discuss trade .",
    "{ORG} sponsors the marathon in {LOC} .",
    "The ship left {LOC} bound for {LOC} .",
    "{PER} is expected to testify before {ORG} .",
]
NEW_FRAMES = [  # only in the validation file
    "Last night {PER} returned to {LOC} after a long tour .",
    "Investors pulled money out of {ORG} amid the scandal .",
    "The bridge linking {LOC} with {LOC} reopened today .",
    "{ORG} confirmed that {PER} had left the company .",
    "Rescue teams reached {LOC} early on Thursday .",
    "{PER} interviewed {PER} for the documentary .",
    "{ORG} will publish its annual report in June .",
    "Officials in {LOC} blamed {ORG} for the delays .",
    "Schools stayed closed for a second day .",
    "{PER} grew up on a farm outside {LOC} .",
]
NAMES = {  # (training names, validation names); the two never share a name
    "PER": (
        [
            "Maria Lopez",
            "John Carter",
            "Aiko Tanaka",
            "Pierre Dubois",
            "Olga Ivanova",
            "Samuel Okafor",
            "Hannah Schmidt",
            "Rahul Mehta",
            "Lucia Rossi",
            "Tom Becker",
            "Fatima Haddad",
            "Erik Larsen",
            "Grace Kim",
            "David Cohen",
            "Anna Kowalska",
            "Miguel Santos",
            "Chen Wei",
            "Laura Brown",
            "Ivan Petrov",
            "Sofia Moreno",
            "Kwame Mensah",
            "Julia Fischer",
            "Omar Farouk",
            "Emma Wilson",
            "Paolo Bianchi",
            "Nadia Rahman",
            "Peter Novak",
            "Yuki Sato",
            "Carlos Mendes",
            "Helen Park",
            "Madonna",
            "Pele",
        ],
        [
            "Ingrid Berg",
            "Tariq Aziz",
            "Mei Lin",
            "Jacques Moreau",
            "Elena Popescu",
            "Daniel Osei",
            "Clara Hoffmann",
            "Vikram Singh",
            "Giulia Conti",
            "Lars Nilsson",
            "Amara Diallo",
            "Sarah Miller",
            "Kenji Watanabe",
            "Ana Ferreira",
            "Nina Horvat",
            "Bjork",
        ],
    ),
    "ORG": (
        [
            "Northwind Traders",
            "Helix Biotech",
            "the United Nations",
            "Red Cross",
            "Bank of Lisbon",
            "Apex Motors",
            "Global News Agency",
            "Orion Airlines",
            "Silverline Energy",
            "Maple Insurance",
            "City Council",
            "Harbor Shipping",
            "Atlas Mining",
            "Blue River Foods",
            "Kestrel Software",
            "National Rail",
            "Sunrise Hotels",
            "Vertex Capital",
            "FC Porto",
            "Real Madrid",
            "Greenfield University",
            "World Health Organization",
            "Nordic Steel",
            "Crescent Media",
        ],
        [
            "Polaris Telecom",
            "Granite Bank",
            "Summit Pharmaceuticals",
            "Ajax",
            "Riverside College",
            "Falcon Logistics",
            "Evergreen Trust",
            "International Monetary Fund",
            "Cobalt Robotics",
            "Lighthouse Press",
        ],
    ),
    "LOC": (
        [
            "Paris",
            "New York",
            "Buenos Aires",
            "Nairobi",
            "Tokyo",
            "Berlin",
            "Cape Town",
            "Oslo",
            "Lima",
            "Mumbai",
            "Cairo",
            "Toronto",
            "Madrid",
            "Hanoi",
            "Warsaw",
            "Rio de Janeiro",
            "Sydney",
            "Dublin",
            "Lagos",
            "Vienna",
            "Istanbul",
            "Chile",
            "Kenya",
            "Norway",
            "Brazil",
            "the Alps",
            "Sicily",
            "Texas",
            "Bavaria",
            "Hong Kong",
        ],
        [
            "Lisbon",
            "Seoul",
            "Accra",
            "Montreal",
            "Prague",
            "Quito",
            "Helsinki",
            "Manila",
            "Peru",
            "Morocco",
            "Tuscany",
            "San Francisco",
            "Kuala Lumpur",
            "Iceland",
        ],
    ),
}


def fill(frame: str, names: dict[str, list[str]], rng: random.Random) -> list[tuple[str, str]]:
    """A frame's tokens with IOB2 tags; a slot's name is split into tokens (a leading "the" stays O)."""
    rows: list[tuple[str, str]] = []
    for token in frame.split():
        if not (token.startswith("{") and token.endswith("}")):
            rows.append((token, "O"))
            continue
        kind = token[1:-1]
        words = rng.choice(names[kind]).split()
        if words[0] == "the":
            rows.append(("the", "O"))
            words = words[1:]
        rows += [(w, f"{'B' if i == 0 else 'I'}-{kind}") for i, w in enumerate(words)]
    return rows


def write(path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in s) + "\n" for s in sentences))
    print(f"{path}: {len(sentences)} sentences")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    train_names = {k: v[0] for k, v in NAMES.items()}
    dev_names = {k: v[1] for k, v in NAMES.items()}
    rng = random.Random(15)
    write(OUT / "train.conll", [fill(rng.choice(FRAMES), train_names, rng) for _ in range(600)])
    frames = FRAMES + NEW_FRAMES  # 50 known + 10 new frames: about a sixth of validation is new
    write(OUT / "dev.conll", [fill(rng.choice(frames), dev_names, rng) for _ in range(200)])


if __name__ == "__main__":
    main()
