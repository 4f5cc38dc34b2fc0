"""Seeded synthetic SAMSum-style dialogues whose summaries follow from the text.

Each record is a messenger chat in which two to five people settle something
concrete: meeting up, buying groceries, fixing a broken thing, picking someone
up, lending an item. Names, places, days and times are drawn from lists and a
first proposal is often turned down, so the facts in the summary (who, what,
when, where) can only be recovered by reading the dialogue. Small talk and,
rarely, long rambling catch-ups give a realistic length spread: most chats have
5-20 turns, a few run to about 600 words.

    python -m dialogsum_batch.synthetic --n 100 --seed 0 > out.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from dialogsum_batch.errors import ConfigError

NAMES: tuple[str, ...] = (
    "Anna", "Tom", "Kasia", "Ben", "Olga", "Leo", "Marta", "Jonas", "Priya", "Diego",
    "Aisha", "Kenji", "Fatima", "Liam", "Chloe", "Mateo", "Zoe", "Omar", "Hannah", "Ravi",
    "Sofia", "Lucas", "Emma", "Noah", "Mia", "Ethan", "Ines", "Tariq", "Yuki", "Nadia",
    "Pavel", "Greta", "Hugo", "Amara", "Felix", "Leila", "Oscar", "Rosa", "Samir", "Tess",
    "Viktor", "Wanda", "Xavier", "Yara", "Zack", "Bianca", "Carlos", "Dana", "Elif", "Farah",
    "Gabe", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Milo", "Nora", "Otto", "Paula",
    "Quinn", "Rhys", "Sade", "Theo", "Uma", "Vera", "Wes", "Ximena", "Yusuf", "Zara",
    "Agnes", "Bruno", "Cleo", "Dmitri", "Finn", "Gosia", "Hamid", "Iris", "Jakub", "Maeve",
)
DAYS: tuple[str, ...] = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "tomorrow",
)
DAY_TIMES: tuple[str, ...] = (
    "9 am", "9:30 am", "10 am", "10:30 am", "11 am", "12:30 pm", "1 pm", "2 pm",
    "2:30 pm", "3 pm", "3:30 pm", "4 pm", "4:45 pm",
)
EVENING_TIMES: tuple[str, ...] = (
    "5 pm", "5:30 pm", "6 pm", "6:15 pm", "6:30 pm", "7 pm", "7:30 pm", "8 pm", "8:45 pm", "9 pm",
)
TIMES: tuple[str, ...] = DAY_TIMES + EVENING_TIMES
EMOJI: tuple[str, ...] = ("😂", "🙂", "😅", "👍", "❤️", "🙈", "😍", "🤔", "😬", "🙏", "🎉", ":)", ":D", "xD", ";)")


@dataclass(frozen=True)
class Activity:
    """Something a group can do together, as people write it and as a summary says it."""

    ask: str  # infinitive phrase used in the chat: "go bowling"
    summary: str  # phrase used in the summary: "go bowling"
    times: tuple[str, ...]  # plausible start times
    places: tuple[str, ...]  # where it can happen; at least two


ACTIVITIES: tuple[Activity, ...] = (
    Activity("grab dinner", "have dinner", EVENING_TIMES,
             ("Sakura Sushi", "Trattoria Nonna", "Pho 99", "Burger Barn", "Taco Loco")),
    Activity("see a movie", "go to the cinema", EVENING_TIMES,
             ("the Roxy", "Kino Luna", "Cineworld", "the Odeon")),
    Activity("go bouldering", "go bouldering", TIMES,
             ("Boulder Box", "The Crag", "Vertical Zone")),
    Activity("play football", "play football", TIMES,
             ("Riverside Park", "the school pitch", "Victoria Park")),
    Activity("do a board game night", "have a board game night", EVENING_TIMES,
             ("Dice & Dragons", "The Meeple Pub", "Game Haven")),
    Activity("get coffee", "meet for coffee", DAY_TIMES,
             ("Bean There", "Kafka Cafe", "Caffe Nero", "the kiosk by the fountain")),
    Activity("go for drinks", "go for drinks", EVENING_TIMES,
             ("The Red Lion", "Hops & Barley", "Bar Centrala", "The Anchor")),
    Activity("go for a run", "go running", TIMES,
             ("the canal path", "Hyde Park", "the stadium track")),
    Activity("go swimming", "go swimming", TIMES,
             ("the Aquapark", "Delfin pool", "the lido")),
    Activity("go bowling", "go bowling", EVENING_TIMES,
             ("Strike Lanes", "Galaxy Bowling", "Bowl Arena")),
    Activity("study for the exam", "study together for the exam", DAY_TIMES,
             ("the main library", "the study room on floor 3", "Kafka Cafe")),
    Activity("go to the flea market", "go to the flea market", DAY_TIMES,
             ("the old tram depot", "Market Square", "the harbour car park")),
)
SHOPS: tuple[str, ...] = (
    "Lidl", "Tesco", "Aldi", "the corner shop", "Carrefour",
    "Biedronka", "Sainsbury's", "the market hall", "Rewe", "Spar",
)
ITEMS: tuple[str, ...] = (
    "oat milk", "a dozen eggs", "AA batteries", "a birthday card", "bin bags", "coffee beans", "tomatoes",
    "washing-up liquid", "a loaf of bread", "cat food", "sunscreen", "paracetamol", "charcoal", "ice",
    "lemons", "toilet paper", "butter", "parmesan", "two bottles of wine", "tortilla chips",
)
PURPOSES: tuple[tuple[str, str], ...] = (  # (chat, summary)
    ("we're having people over", "for a dinner party"),
    ("I want to start cooking", "to start cooking"),
    ("the barbecue starts then", "for the barbecue"),
    ("the guests arrive then", "because guests are coming"),
    ("I'm baking a cake", "to bake a cake"),
)
# (thing, problem in chat, problem in summary, what the helper brings, can it be carried)
BROKEN: tuple[tuple[str, str, str, str, bool], ...] = (
    ("washing machine", "is leaking everywhere", "is leaking", "a new hose", False),
    ("bike", "has a flat tyre again", "has a flat tyre", "a pump and a repair kit", True),
    ("laptop", "won't turn on", "won't turn on", "a spare charger", True),
    ("kitchen tap", "keeps dripping", "is dripping", "a wrench and new washers", False),
    ("router", "keeps dropping the wifi", "keeps dropping the connection", "a new cable", True),
    ("shelf", "fell off the wall", "fell off the wall", "a drill and wall plugs", False),
    ("printer", "jams every single time", "keeps jamming", "a cleaning kit", True),
    ("boiler", "makes a horrible banging noise", "makes a banging noise", "a toolbox", False),
)
WORKSHOPS: tuple[str, ...] = (
    "the garage on Mill Road", "the repair café at the library",
    "the makerspace on Dock Street", "the bike shop on Green Street",
)
STATIONS: tuple[str, ...] = (
    "the train station", "the airport", "the bus station", "Terminal 2", "the ferry terminal", "Central Station",
)
# Gender-neutral on purpose: the guest's name is drawn at random.
RELATIVES: tuple[str, ...] = ("cousin", "friend", "colleague", "flatmate", "neighbour", "classmate")
PICKUP_REASONS: tuple[tuple[str, str], ...] = (
    ("I'm stuck at work till late", "is stuck at work"),
    ("my car is at the mechanic's", "has no car at the moment"),
    ("I have a meeting I can't move", "has a meeting"),
    ("I'm still out of town", "is out of town"),
    ("I have to take the dog to the vet", "has to take the dog to the vet"),
)
# (item, why in chat, why in summary)
LOANS: tuple[tuple[str, str, str], ...] = (
    ("drill", "I want to finally put up the shelves", "to put up shelves"),
    ("tent", "we're going to a festival", "for a festival"),
    ("projector", "movie night at ours", "for a movie night"),
    ("ladder", "I need to clean the gutters", "to clean the gutters"),
    ("camping stove", "going hiking with the guys", "for a hiking trip"),
    ("ski jacket", "we're going skiing next month", "for a ski trip"),
    ("sewing machine", "I need to fix my curtains", "to fix curtains"),
    ("pressure washer", "the terrace is filthy", "to clean the terrace"),
)
MEETING_POINTS: tuple[str, ...] = (
    "the office", "the gym on Baker Street", "the community garden", "the climbing wall", "the library", "Bean There",
)
DECLINE_REASONS: tuple[tuple[str, str], ...] = (
    ("I'm working that day", "is working"),
    ("I have a dentist appointment", "has a dentist appointment"),
    ("I'm visiting my parents", "is visiting family"),
    ("I'm still sick", "is ill"),
    ("I have an exam the next morning", "has an exam the next day"),
    ("I promised to babysit my niece", "is babysitting"),
)
ALL_PLACES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [p for a in ACTIVITIES for p in a.places]
        + list(SHOPS) + list(WORKSHOPS) + list(STATIONS) + list(MEETING_POINTS)
    )
)

# Small talk, as (opening, reply) pairs; no names, places or times from the lists above.
SMALL_TALK: tuple[tuple[str, str], ...] = (
    ("how was your weekend btw?", "chill, mostly slept"),
    ("did you see the match last night?", "don't even talk to me about it"),
    ("omg it's so hot today", "I know, I'm melting"),
    ("how's the new job going?", "busy but okay, my boss is nice"),
    ("did you finish that series?", "yes!! the ending was wild"),
    ("look who moved in next door <file_photo>", "a puppy!!! so cute"),
    ("<file_gif>", "hahaha exactly"),
    ("is your mum feeling better?", "yeah much better, thanks for asking"),
    ("my phone is almost dead", "okay then write quickly"),
    ("guess who I saw at the bakery today", "who??"),
    ("I made bread for the first time <file_photo>", "looks better than the shop one"),
    ("did anyone find my sunglasses?", "nope, sorry"),
    ("still can't believe the rent went up again", "same here, it's a joke"),
    ("have you started packing already?", "not even a bit, I'm a disaster"),
    ("this weather is so depressing", "can't wait for spring"),
    ("<file_other>", "what is this link?"),
    ("sorry for the late reply, crazy day", "no worries"),
    ("by the way thanks for the recipe", "did it work out?"),
)
# Stories for the rare long catch-up turns: each is told in order, a few sentences a turn.
RAMBLE: tuple[tuple[str, ...], ...] = (
    ("So the thing with my landlord is still not sorted and I'm honestly losing my mind.",
     "He came by last week to look at the heating and then just left without saying anything.",
     "My sister thinks I should write a formal email but I don't want to make it weird.",
     "Anyway the flat is freezing and I've been working in my coat for a week now.",
     "If nothing happens by the end of the month I'm calling the tenants' association."),
    ("At work everything is upside down because of the new system they introduced.",
     "Nobody knows how it works and the training was two hours of someone reading slides.",
     "I had to redo the whole monthly report because the numbers didn't match.",
     "My manager was nice about it but I could see she was stressed too.",
     "We had a team lunch afterwards and someone brought a cake shaped like a spreadsheet.",
     "Honestly that cake was the best part of the month."),
    ("The bus was late three days in a row, I nearly gave up and bought a bike.",
     "Actually I did look at bikes, but they are so expensive now, it's ridiculous.",
     "The guy in the shop tried to sell me one that costs more than my rent.",
     "So for now I'm walking, which is at least good for my step count."),
    ("I signed up for that pottery class we talked about and the first session was hilarious.",
     "My bowl collapsed twice and the teacher said it had character, which I choose to take as a compliment.",
     "There's a retired dentist in the group who makes perfect cups every single time.",
     "Next week we start glazing, so expect ugly presents for your birthday."),
    ("The cat has decided that five in the morning is breakfast time and there is no negotiating with her.",
     "I tried closing the bedroom door but she just sits outside and screams.",
     "Then I tried one of those automatic feeders and she learned to knock it over.",
     "The vet says she's perfectly healthy and just very clever, great."),
    ("My brother wants to go on a road trip in summer but his plans always fall apart.",
     "Last time we ended up spending two days in a motel next to a motorway.",
     "He says this time he has a spreadsheet and a proper route.",
     "I said I'm in if I don't have to drive at night, so we'll see."),
    ("I started running again, well, jogging slowly, but it still counts.",
     "My knees are not happy about it but my head feels much better.",
     "I downloaded one of those apps that shouts encouraging things at you.",
     "Yesterday it told me I was doing amazing while I was standing at a red light."),
    ("The neighbours are renovating again, drilling from eight in the morning.",
     "I swear they have been renovating that flat for three years now.",
     "I went over to complain and they gave me a box of chocolates and an apology.",
     "So now I can't even be angry, which is honestly worse."),
    ("I finally watched the documentary you recommended and I can't stop thinking about it.",
     "I told my colleagues about it and now half the office is watching it.",
     "We even started a little lunch club to talk about it.",
     "Next we're doing the one about the deep sea, have you seen it?"),
    ("Then my mum called and asked if I'm eating properly, which, to be fair, I'm not.",
     "She is sending me a parcel with soup in jars, which will definitely leak.",
     "Last time the whole parcel smelled of garlic for a week.",
     "But I love her and the soup is amazing, so I'm not complaining."),
)
REACTIONS: tuple[str, ...] = (
    "omg", "no way", "that's insane", "and then?", "hahaha", "oh no", "classic", "same tbh",
    "I can't believe it", "poor you", "wow", "lol", "honestly same", "that sounds exhausting",
)

Turn = tuple[str, str, dict]  # (speaker, template, slots)


@dataclass(frozen=True)
class Draft:
    """The core of a chat before styling: speakers, turn templates and the summary."""

    cast: tuple[str, ...]  # speakers, first one opens the chat
    turns: tuple[Turn, ...]
    summary: str


@dataclass(frozen=True)
class Voice:
    """How one speaker types."""

    lower: bool  # writes everything in lower case
    slang: bool  # "u", "r", "pls", "thx"
    emoji: float  # chance of an emoji at the end of a turn, 0-0.4
    typo: float  # chance of one swapped-letter typo in a turn, 0-0.15


SLANG = {"you": "u", "your": "ur", "are": "r", "okay": "ok", "please": "pls", "thanks": "thx", "because": "cuz"}
SLANG_RE = re.compile(r"\b(" + "|".join(SLANG) + r")\b")


def _people(names: Sequence[str]) -> str:
    """Join names the way a summary does: 'A', 'A and B', 'A, B and C'."""
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _on(day: str) -> str:
    """'on Friday', but plain 'tomorrow'."""
    return day if day == "tomorrow" else f"on {day}"


def _later(rng: random.Random, options: Sequence[str]) -> list[str]:
    """Two different entries of an ordered list, the earlier first (a proposal, then a later counter-offer)."""
    i, j = sorted(rng.sample(range(len(options)), 2))
    return [options[i], options[j]]


# What people say at each step of a scenario: {slot}s are filled in after the
# speaker's typing style is applied, so names, places and times stay exact.
PHRASES: dict[str, tuple[str, ...]] = {
    # meet
    "meet_open": ("Who wants to {act} {on_day0}?", "Shall we {act} {on_day0}?",
                  "hey guys, we should {act} {on_day0}, what do you think?",
                  "I'm free {on_day0}, anyone want to {act}?", "Long time no see! Let's {act} {on_day0}?"),
    "meet_yes": ("I'm in!", "count me in", "yesss", "sounds good", "sure, why not", "Definitely!", "okay 👍", "finally! yes"),
    "meet_no": ("Sorry guys, I can't, {reason}", "I'm out this time 😢 {reason}", "ugh I'd love to but {reason}"),
    "meet_no_reply": ("no worries, next time!", "oh no", "shame, next time then"),
    "day_counter": ("can't do {day0}, I'm working. {day}?", "{day0} is bad for me, what about {day}?",
                    "would {day} work instead?"),
    "day_accept": ("{day} works too", "okay {day} then", "fine by me"),
    "place_first": ("how about {place0}?", "{place0} like last time?", "{place0}? <file_other>"),
    "place_counter": ("{place0} was so meh last time. {place}?", "nah, let's try {place}, I heard it's great",
                      "what about {place}? it's closer for everyone"),
    "place_accept": ("okay {place} it is", "fine, {place}", "good idea"),
    "place_only": ("{place} as usual?", "let's go to {place}", "{place}? <file_other>"),
    "place_agree": ("perfect", "yes, love that place", "great"),
    "time_first": ("what time? {time0}?", "{time0} okay?", "let's meet at {time0}"),
    "time_counter": ("bit early, I finish work late. {time}?", "can we do {time}? I have a thing before",
                     "{time} is better for me"),
    "time_accept": ("{time} then", "okay, {time}", "sure"),
    "time_ask": ("what time?", "when exactly?"),
    "time_only": ("{time}?", "let's say {time}", "{time} at the entrance"),
    "meet_recap": ("So {place}, {on_day}, {time}. See you there!", "okay so {time} at {place} {on_day} 🙌",
                   "see you all {on_day} then!", "👍"),
    # buy
    "buy_open": ("Are you going shopping today?", "hey, are you still at the shops?", "are you going to the shops later?"),
    "buy_going": ("yes, on my way to {shop0}", "just heading to {shop0}, why?", "about to go to {shop0}"),
    "buy_ask": ("Could you get {items}?", "can you grab {items} please?", "Oh great, we need {items}"),
    "buy_extra": ("and {extra} please!!", "oh and {extra}, we're out"),
    "buy_check": ("sure, anything else?", "okay. which brand?"),
    "buy_done": ("no that's all, thanks!", "whatever's cheapest"),
    "buy_switch": ("{shop0} is closed today 🙄 I'll go to {shop} instead", "{shop0} has no {first}, trying {shop}"),
    "buy_deadline": ("I need it by {time}, {purpose}", "please be back before {time}, {purpose}"),
    "buy_promise": ("no problem", "I'll be home by then", "on it"),
    # fix
    "fix_open": ("my {thing} {problem} 😩", "help! the {thing} {problem}",
                 "Do you know anything about fixing stuff? my {thing} {problem}"),
    "fix_offer": ("again? 🙈 I can take a look", "Oh no. I can have a look if you want", "I had the same problem, I can help"),
    "fix_thanks": ("that would be amazing", "really? you're a lifesaver"),
    "fix_when": ("{day0} at {time0}?", "how about {day0}, {time0}?"),
    "fix_counter": ("I'm at work then. {day} at {time}?", "can't do {day0}, would {day} at {time} work?"),
    "fix_accept": ("okay, {day} at {time} it is", "sure"),
    "fix_workshop": ("bring it to {place}, I have all the tools there", "can you bring it to {place}?"),
    "fix_home": ("I'll come over to yours", "I'll come to your place"),
    "fix_tool": ("I'll bring {tool}", "I'll get {tool} on the way"),
    "fix_bye": ("thank youuu", "I owe you a beer 🍺"),
    # pickup
    "pick_open": ("Can you do me a huge favour?", "hey, quick question", "are you free {on_day}?"),
    "pick_what": ("sure, what's up", "depends 😅 what is it?"),
    "pick_ask": ("My {rel} {guest} arrives at {place} {on_day} at {time0}, could you pick them up? {reason}",
                 "could you pick up my {rel} {guest} from {place} {on_day}? {reason}. they get in at {time0}"),
    "pick_yes": ("of course. what does {guest} look like?", "sure, no problem", "okay, I'll be there"),
    "pick_photo": ("<file_photo>", "I'll send you a photo <file_photo>"),
    "pick_delay": ("update: {guest} is delayed, gets in at {time} now", "change of plans, it's {time} now, delay 🙄"),
    "pick_delay_ok": ("okay, {time} then", "no problem, {time}"),
    "pick_bye": ("thank you so much!!", "you're the best ❤️"),
    # lend
    "lend_open": ("Hi! Do you still have that {item}?", "hey {lender}, could I borrow your {item}?"),
    "lend_why": ("yes, why?", "sure, what for?"),
    "lend_terms": ("sure, but I need it back by {ret_day}", "of course, just bring it back by {ret_day}"),
    "lend_deal": ("deal", "sure, no problem"),
    "lend_where": ("{day} at {time}? I'll be at {place}", "I'm at {place} {on_day} from {time}"),
    "lend_bye": ("perfect, see you there", "great, thanks a million"),
    # shared
    "ok": ("okay", "okay thanks", "no problem", "fine", "okay 👍"),
}
SUMMARIES: dict[str, tuple[str, ...]] = {
    "meet": ("{people} will {act_s} at {place} {on_day} at {time}.",
             "{people} are going to {act_s} {on_day}. They will meet at {place} at {time}.",
             "{host} suggested to {act_s}. {people} will meet at {place} {on_day} at {time}."),
    "buy": ("{buyer} will buy {all_items} at {shop} for {for_whom}. {asker} needs them by {time} {purpose_s}.",
            "{buyer} is going to {shop} and will get {all_items} for {for_whom}, by {time} {purpose_s}."),
    "fix": ("{owner}'s {thing} {problem_s}. {helper} will fix it at {place} {on_day} at {time} and bring {tool}.",
            "{helper} will help {owner} with the {thing}, which {problem_s}, at {place} {on_day} at {time}. "
            "{helper} will bring {tool}."),
    "pickup": ("{driver} will pick up {asker}'s {rel} {guest} from {place} {on_day} at {time}, as {asker} {reason_s}.",
               "{asker} {reason_s}, so {driver} will collect {asker}'s {rel} {guest} at {place} at {time} {on_day}."),
    "lend": ("{lender} will lend {borrower} the {item} {why_s}. {borrower} will pick it up at {place} {on_day} at {time} "
             "and return it by {ret_day}.",),
}


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    """One entry of a tuple (faster than rng.choice on this hot path)."""
    return options[rng.randrange(len(options))]


def _line(rng: random.Random, who: str, key: str, slots: dict) -> Turn:
    """A turn by `who` saying one of the PHRASES[key] templates."""
    return (who, _pick(rng, PHRASES[key]), slots)


def _two(rng: random.Random, options: Sequence[str], p_change: float) -> list[str]:
    """A first proposal and the final choice: different with probability p_change, the same otherwise."""
    return rng.sample(list(options), 2) if rng.random() < p_change else [rng.choice(options)] * 2


def _meet_negotiation(rng: random.Random, cast: Sequence[str], s: dict) -> list[Turn]:
    """Turns that settle day, place and time, sometimes overturning the first idea."""
    a, b = rng.sample(list(cast), 2)
    turns: list[Turn] = []
    if s["day0"] != s["day"]:
        turns += [_line(rng, b, "day_counter", s), _line(rng, a, "day_accept", s)]
    if s["place0"] != s["place"]:
        turns += [_line(rng, a, "place_first", s), _line(rng, b, "place_counter", s), _line(rng, a, "place_accept", s)]
    else:
        turns += [_line(rng, a, "place_only", s), _line(rng, b, "place_agree", s)]
    if s["time0"] != s["time"]:
        turns += [_line(rng, a, "time_first", s), _line(rng, b, "time_counter", s), _line(rng, a, "time_accept", s)]
    else:
        turns += [_line(rng, b, "time_ask", s), _line(rng, a, "time_only", s)]
    return turns


def _meet(rng: random.Random, cast: tuple[str, ...]) -> Draft:
    """A group agrees on an activity, a day, a place and a time; one may drop out."""
    act = rng.choice(ACTIVITIES)
    place0, place = _two(rng, act.places, 0.45)
    day0, day = _two(rng, DAYS, 0.35)
    time0, time = _later(rng, act.times) if rng.random() < 0.4 else [rng.choice(act.times)] * 2
    decliner = rng.choice(cast[1:]) if len(cast) >= 3 and rng.random() < 0.35 else None
    reason, reason_s = rng.choice(DECLINE_REASONS)
    s = {"act": act.ask, "day0": day0, "day": day, "on_day0": _on(day0), "on_day": _on(day),
         "place0": place0, "place": place, "time0": time0, "time": time, "reason": reason}
    host, going = cast[0], [c for c in cast if c != decliner]
    turns = [_line(rng, host, "meet_open", s)]
    for name in rng.sample(list(cast[1:]), len(cast) - 1):
        if name == decliner:
            turns += [_line(rng, name, "meet_no", s), _line(rng, host, "meet_no_reply", s)]
        else:
            turns.append(_line(rng, name, "meet_yes", s))
    turns += _meet_negotiation(rng, going, s)
    if rng.random() < 0.6:
        turns.append(_line(rng, rng.choice(going), "meet_recap", s))
    summary = _pick(rng, SUMMARIES["meet"]).format(people=_people(going), act_s=act.summary, host=host, **s)
    if decliner:
        summary += f" {decliner} {reason_s} and can't come."
    return Draft(cast, tuple(turns), summary)


def _buy(rng: random.Random, cast: tuple[str, ...]) -> Draft:
    """One person asks another, who is going shopping, to buy a few things by a deadline."""
    asker, buyer, *rest = cast
    shop0, shop = _two(rng, SHOPS, 0.3)
    picked = rng.sample(ITEMS, rng.randint(1, 3) + (1 if rest else 0))
    wanted = picked[:-1] if rest else picked  # a flatmate, if any, adds the last item
    purpose, purpose_s = rng.choice(PURPOSES)
    s = {"shop0": shop0, "shop": shop, "items": _people(wanted), "first": wanted[0], "extra": picked[-1],
         "time": rng.choice(TIMES), "purpose": purpose}
    turns = [_line(rng, asker, "buy_open", s), _line(rng, buyer, "buy_going", s), _line(rng, asker, "buy_ask", s)]
    if rest:
        turns += [_line(rng, rest[0], "buy_extra", s), _line(rng, buyer, "ok", s)]
    turns += [_line(rng, buyer, "buy_check", s), _line(rng, asker, "buy_done", s)]
    if shop0 != shop:
        turns += [_line(rng, buyer, "buy_switch", s), _line(rng, asker, "ok", s)]
    turns += [_line(rng, asker, "buy_deadline", s), _line(rng, buyer, "buy_promise", s)]
    summary = _pick(rng, SUMMARIES["buy"]).format(
        buyer=buyer, asker=asker, all_items=_people(picked), for_whom=_people([asker, *rest]), purpose_s=purpose_s, **s)
    return Draft(cast, tuple(turns), summary)


def _fix(rng: random.Random, cast: tuple[str, ...]) -> Draft:
    """Someone's thing is broken; a friend agrees on when and where to fix it."""
    owner, helper = cast
    thing, problem, problem_s, tool, portable = rng.choice(BROKEN)
    day0, day = _two(rng, DAYS, 0.4)
    time0, time = _later(rng, EVENING_TIMES) if day0 != day else [rng.choice(TIMES)] * 2
    at_workshop = portable and rng.random() < 0.5
    s = {"thing": thing, "problem": problem, "tool": tool, "day0": day0, "day": day, "on_day": _on(day),
         "time0": time0, "time": time, "place": rng.choice(WORKSHOPS) if at_workshop else f"{owner}'s place"}
    turns = [_line(rng, owner, "fix_open", s), _line(rng, helper, "fix_offer", s),
             _line(rng, owner, "fix_thanks", s), _line(rng, helper, "fix_when", s)]
    if day0 != day:
        turns += [_line(rng, owner, "fix_counter", s), _line(rng, helper, "fix_accept", s)]
    else:
        turns.append(_line(rng, owner, "place_agree", s))
    if at_workshop:
        turns += [_line(rng, helper, "fix_workshop", s), _line(rng, owner, "ok", s)]
    else:
        turns.append(_line(rng, helper, "fix_home", s))
    turns += [_line(rng, helper, "fix_tool", s), _line(rng, owner, "fix_bye", s)]
    summary = _pick(rng, SUMMARIES["fix"]).format(owner=owner, helper=helper, problem_s=problem_s, **s)
    return Draft(cast, tuple(turns), summary)


def _pickup(rng: random.Random, cast: tuple[str, ...]) -> Draft:
    """Someone asks a friend to collect a relative or friend from a station, perhaps after a delay."""
    asker, driver = cast
    reason, reason_s = rng.choice(PICKUP_REASONS)
    time0, time = _later(rng, TIMES) if rng.random() < 0.35 else [rng.choice(TIMES)] * 2
    s = {"rel": rng.choice(RELATIVES), "guest": rng.choice([n for n in NAMES if n not in cast]),
         "place": rng.choice(STATIONS), "time0": time0, "time": time, "on_day": _on(rng.choice(DAYS)), "reason": reason}
    turns = [_line(rng, asker, "pick_open", s), _line(rng, driver, "pick_what", s), _line(rng, asker, "pick_ask", s),
             _line(rng, driver, "pick_yes", s), _line(rng, asker, "pick_photo", s)]
    if time0 != time:
        turns += [_line(rng, asker, "pick_delay", s), _line(rng, driver, "pick_delay_ok", s)]
    turns += [(driver, "I'll text you when I have them", s), _line(rng, asker, "pick_bye", s)]
    summary = _pick(rng, SUMMARIES["pickup"]).format(driver=driver, asker=asker, reason_s=reason_s, **s)
    return Draft(cast, tuple(turns), summary)


def _lend(rng: random.Random, cast: tuple[str, ...]) -> Draft:
    """Someone borrows an item and agrees where and when to collect and return it."""
    borrower, lender = cast
    item, why, why_s = rng.choice(LOANS)
    day, ret_day = _later(rng, DAYS[:7])  # weekdays in order: return after pick-up
    s = {"item": item, "why": why, "lender": lender, "place": rng.choice(MEETING_POINTS), "day": day,
         "on_day": _on(day), "time": rng.choice(TIMES), "ret_day": ret_day}
    turns = [_line(rng, borrower, "lend_open", s), _line(rng, lender, "lend_why", s), (borrower, "{why}", s),
             _line(rng, lender, "lend_terms", s), _line(rng, borrower, "lend_deal", s),
             (borrower, "when can I pick it up?", s), _line(rng, lender, "lend_where", s),
             _line(rng, borrower, "lend_bye", s)]
    summary = _pick(rng, SUMMARIES["lend"]).format(borrower=borrower, why_s=why_s, **s)
    return Draft(cast, tuple(turns), summary)


Scenario = Callable[[random.Random, tuple[str, ...]], Draft]
SCENARIOS: tuple[tuple[Scenario, float, tuple[int, ...]], ...] = (  # (builder, weight, cast sizes)
    (_meet, 0.40, (2, 2, 2, 3, 3, 4, 5)),
    (_buy, 0.15, (2, 2, 3)),
    (_fix, 0.15, (2,)),
    (_pickup, 0.15, (2,)),
    (_lend, 0.15, (2,)),
)


def _voice(rng: random.Random) -> Voice:
    """A random typing style for one speaker."""
    return Voice(lower=rng.random() < 0.3, slang=rng.random() < 0.35,
                 emoji=rng.choice((0.0, 0.05, 0.15, 0.3)), typo=rng.choice((0.0, 0.0, 0.05, 0.12)))


def _typo(rng: random.Random, text: str) -> str:
    """Swap two letters inside one plain word (never inside a {slot} or a <file_...> tag)."""
    words = text.split(" ")
    i = rng.randrange(len(words))
    w = words[i]
    if len(w) < 5 or not w.isalpha():
        return text
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def _say(rng: random.Random, voice: Voice, template: str, slots: dict) -> str:
    """Style the template text as this speaker types, then fill in the facts unchanged."""
    text = template
    if voice.lower:
        text = text.lower()
    if voice.slang:
        text = SLANG_RE.sub(lambda m: SLANG[m.group(1)], text)
    if voice.typo and rng.random() < voice.typo:
        text = _typo(rng, text)
    if voice.emoji and rng.random() < voice.emoji:
        text += " " + rng.choice(EMOJI)
    return text.format(**slots) if slots else text


def _small_talk(rng: random.Random, cast: Sequence[str], pairs: int) -> list[Turn]:
    """A few unrelated question/answer exchanges between random speakers."""
    turns: list[Turn] = []
    for opening, reply in rng.sample(SMALL_TALK, pairs):
        a, b = rng.sample(list(cast), 2)
        turns += [(a, opening, {}), (b, reply, {})]
    return turns


def _catch_up(rng: random.Random, cast: Sequence[str], words: int) -> list[Turn]:
    """Long story turns with short reactions, about `words` words in all (the rare long tail)."""
    turns: list[Turn] = []
    for story in rng.sample(RAMBLE, len(RAMBLE)):
        talker = rng.choice(cast)
        listener = rng.choice([c for c in cast if c != talker])
        i = 0
        while i < len(story) and words > 0:
            step = rng.randint(1, 3)
            text = " ".join(story[i:i + step])
            turns.append((talker, text, {}))
            words -= len(text.split())
            i += step
            if rng.random() < 0.6:
                turns.append((listener, rng.choice(REACTIONS), {}))
        if words <= 0:
            break
    return turns


def _with_padding(rng: random.Random, draft: Draft) -> list[Turn]:
    """Put small talk and, rarely, a long catch-up before or after the core turns."""
    u = rng.random()
    pairs = rng.randint(0, 1) if u < 0.55 else rng.randint(1, 4)
    extra = _small_talk(rng, draft.cast, pairs)
    if u > 0.93:  # the long tail: a catch-up bringing the chat to roughly 250-600 words
        words = sum(len(t.split()) + 2 for _, t, _ in draft.turns + tuple(extra))
        extra = _catch_up(rng, draft.cast, rng.randint(250, 520) - words) + extra
    core = list(draft.turns)
    return extra + core if rng.random() < 0.5 else core + extra


def _record(rng: random.Random, rid: str) -> dict:
    """One synthetic record: draw a scenario and cast, style every turn, join the lines."""
    builder, _, sizes = rng.choices(SCENARIOS, weights=[w for _, w, _ in SCENARIOS])[0]
    draft = builder(rng, tuple(rng.sample(NAMES, rng.choice(sizes))))
    voices = {name: _voice(rng) for name in draft.cast}
    lines = [f"{who}: {_say(rng, voices[who], template, slots)}" for who, template, slots in _with_padding(rng, draft)]
    return {"id": rid, "dialogue": "\n".join(lines), "summary": draft.summary}


def generate(n: int, seed: int = 0, id_prefix: str = "syn") -> Iterator[dict]:
    """Stream `n` records {id, dialogue, summary}; the same seed gives the same records."""
    if n < 0:  # checked here, not on first next(), so the caller sees it at once
        raise ConfigError(f"number of synthetic records must be >= 0, got {n}")
    return _stream(n, random.Random(seed), id_prefix)


def _stream(n: int, rng: random.Random, id_prefix: str) -> Iterator[dict]:
    """The generator behind `generate`: one record at a time, constant memory."""
    for i in range(n):
        yield _record(rng, f"{id_prefix}-{i:06d}")


def write_jsonl(path: str | Path, n: int, seed: int = 0) -> int:
    """Write `n` records as UTF-8 JSONL to `path` ('-' for stdout) and return `n`."""
    out = sys.stdout if str(path) == "-" else open(path, "w", encoding="utf-8")
    try:
        for record in generate(n, seed):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print synthetic records as JSONL."""
    parser = argparse.ArgumentParser(prog="python -m dialogsum_batch.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="number of records (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", default="-", help="output file, '-' for stdout (default)")
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be >= 0")
    write_jsonl(args.out, args.n, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
