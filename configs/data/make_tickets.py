"""Writes tickets.csv: generated customer-support tickets for configs/tickets_text.yaml (seeded, offline).

Columns: `channel` (email / chat / phone / web form: a category, weakly tied to the team), `message` (free
text: a few sentences, typed by a customer) and the label `team` (billing / delivery / technical / account).
Each team has its own words, but the tickets are not trivially separable: every team shares the generic
words (order, help, please, app, ...), a quarter of the tickets also mention another team's topic ("I already
reset my password, but ..."), some deny one ("this is not about a refund"), some are too vague to route, a few
are routed to the wrong team, and words carry typos. A bag-of-words logistic regression reaches about 0.87.
Run: python configs/data/make_tickets.py  (the same file every time)
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

TEAMS: dict[str, dict[str, list[str]]] = {
    "billing": {
        "ask": ["I was charged twice for {thing}", "my card was billed {amount} but I expected less",
                "please refund the {amount} you took for {thing}", "the invoice for {thing} shows the wrong price",
                "why did my subscription renew, I cancelled it", "I need a copy of my invoice for {thing}",
                "the discount code was not applied to {thing}", "there is a payment I do not recognise",
                "can I pay by bank transfer instead of card", "you still owe me the refund for {thing}"],
        "thing": ["my last order", "the yearly plan", "the premium subscription", "order {number}",
                  "two licences", "the gift card", "the monthly plan"],
        "tail": ["my bank statement shows it", "the VAT is wrong too", "I want my money back",
                 "the receipt says something else", "please fix the charge"],
        "topic": ["a refund", "the invoice", "a charge on my card", "my payment"],
    },
    "delivery": {
        "ask": ["my parcel has not arrived yet", "the package for {thing} is late",
                "tracking says delivered but nothing came", "the courier left {thing} at the wrong address",
                "the box for {thing} arrived damaged", "can I change the delivery address for {thing}",
                "the shipment is stuck in customs", "only half of {thing} was in the parcel",
                "when will {thing} be shipped", "the driver never rang the bell"],
        "thing": ["my order", "order {number}", "the replacement", "the spare parts", "the second box",
                  "my return", "the chair"],
        "tail": ["the tracking number does not work", "I waited at home all day", "the neighbour does not have it",
                 "it was supposed to come on {day}", "please send it again"],
        "topic": ["the delivery", "a lost parcel", "the tracking", "shipping"],
    },
    "technical": {
        "ask": ["the app crashes when I open {thing}", "I get an error 500 on {thing}",
                "the page will not load since the update", "sync stopped working on {thing}",
                "the export to PDF gives an empty file", "the screen freezes after login on {thing}",
                "notifications are not showing up on {thing}", "the upload fails at 90 percent",
                "the update broke the search", "the desktop version keeps logging errors"],
        "thing": ["my phone", "the tablet", "the dashboard", "the settings page", "Android", "the laptop",
                  "the web version"],
        "tail": ["I reinstalled it twice", "the log shows a timeout", "it worked last week",
                 "I cleared the cache already", "the bug happens every time"],
        "topic": ["a bug", "an app crash", "the update", "an error message"],
    },
    "account": {
        "ask": ["I cannot log in to my account", "please reset my password",
                "I want to delete my account and my data", "how do I change the email on my profile",
                "my account was locked after too many attempts", "I did not get the verification email",
                "someone else may have access to my account", "please merge my two accounts",
                "I want to change my username", "two factor login codes do not arrive on {thing}"],
        "thing": ["my phone", "my new number", "the old email", "my work address", "the tablet"],
        "tail": ["I am locked out", "the login link expired", "I used the same email as before",
                 "my profile still shows the old name", "I want this closed today"],
        "topic": ["my password", "the login", "my profile", "a locked account"],
    },
}
CHANNELS = {"billing": [0.4, 0.2, 0.2, 0.2], "delivery": [0.25, 0.35, 0.25, 0.15],
            "technical": [0.3, 0.2, 0.1, 0.4], "account": [0.25, 0.3, 0.25, 0.2]}   # email, chat, phone, web form
OPENERS = ["hi", "hello", "hello team", "good morning", "dear support", "hi there", "hey", ""]
CLOSERS = ["thanks", "thank you", "please help", "regards", "cheers", "any help is appreciated",
           "please get back to me", "", ""]
SHARED = ["I ordered last month and", "since yesterday", "about my order", "this is the second time I write",
          "I already contacted you and", "this is urgent", "my account number is {number} and", "on the app"]
VAGUE = ["please call me back about my order", "I have a problem with my account and my order",
         "something is wrong, please help", "nobody answered my last message", "I need help with the app",
         "what is going on with my order"]
DAYS = ["monday", "tuesday", "friday", "the weekend", "last week"]
AMOUNTS = ["9.99", "49 euro", "120 dollars", "twice the price", "the full amount"]


def main(out: Path | None = None, rows: int = 4000, seed: int = 26) -> Path:
    """Write `rows` tickets to `out` (default: tickets.csv beside this file); returns the path."""
    rng = np.random.default_rng(seed)
    out = out or Path(__file__).with_name("tickets.csv")
    teams = list(TEAMS)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["channel", "message", "team"])
        for _ in range(rows):
            team = teams[int(rng.integers(len(teams)))]
            channel = ["email", "chat", "phone", "web form"][int(rng.choice(4, p=CHANNELS[team]))]
            label = teams[int(rng.integers(len(teams)))] if rng.random() < 0.04 else team   # misrouted
            writer.writerow([channel, _message(rng, team), label])
    return out


def _message(rng: np.random.Generator, team: str) -> str:
    """One ticket of `team`: greeting, the request (sometimes vague), maybe another team's topic, a closing."""
    other = [t for t in TEAMS if t != team][int(rng.integers(len(TEAMS) - 1))]
    parts = [_pick(rng, OPENERS)]
    if rng.random() < 0.3:
        parts.append(_fill(rng, _pick(rng, SHARED), team))
    parts.append(_pick(rng, VAGUE) if rng.random() < 0.07 else _fill(rng, _pick(rng, TEAMS[team]["ask"]), team))
    roll = rng.random()
    if roll < 0.25:   # another team's topic as context
        parts.append(f"{_pick(rng, ['also', 'by the way', 'and before that', 'besides'])} "
                     f"{_fill(rng, _pick(rng, TEAMS[other]['ask']), other)}")
    elif roll < 0.35:   # a denial: the other team's words, not its topic
        parts.append(f"{_pick(rng, ['this is not about', 'it is not a question about', 'no problem with'])} "
                     f"{_pick(rng, TEAMS[other]['topic'])}")
    if rng.random() < 0.6:
        parts.append(_fill(rng, _pick(rng, TEAMS[team]["tail"]), team))
    parts.append(_pick(rng, CLOSERS))
    return _typos(rng, ". ".join(p[:1].upper() + p[1:] for p in parts if p))


def _fill(rng: np.random.Generator, template: str, team: str) -> str:
    thing = _pick(rng, TEAMS[team]["thing"])
    return (template.replace("{thing}", thing).replace("{number}", str(int(rng.integers(10000, 99999))))
            .replace("{day}", _pick(rng, DAYS)).replace("{amount}", _pick(rng, AMOUNTS)))


def _typos(rng: np.random.Generator, text: str) -> str:
    """Drop or swap a letter in about one word of twenty, as hurried typing does."""
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) > 3 and rng.random() < 0.05:
            j = int(rng.integers(1, len(word) - 1))
            swapped = word[:j] + word[j + 1] + word[j] + word[j + 2:]
            words[i] = word[:j] + word[j + 1:] if rng.random() < 0.5 else swapped
    return " ".join(words)


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
