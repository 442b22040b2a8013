"""Fake but plausible people, chats and texts for demo traffic (no external data needed)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.demo.payloads import FakeMessage

FIRST = [
    "Ada",
    "Bruno",
    "Chen",
    "Dana",
    "Emeka",
    "Farah",
    "Gustav",
    "Hana",
    "Ivan",
    "Jules",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
]
LAST = [
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Novak",
    "Haddad",
    "Silva",
    "Kowalski",
    "Nguyen",
    "Schmidt",
    "Rossi",
    "Mensah",
    "Ivanova",
    "Park",
    "Costa",
    "Byrne",
]
TOPICS = [
    "Q3 roadmap",
    "Release train",
    "Berlin offsite",
    "Design review",
    "Family",
    "Climbing crew",
    "Invoices",
    "Support escalations",
    "Book club",
    "Apartment hunt",
    "Hiring loop",
    "Launch party",
]
OPENERS = [
    "Quick question:",
    "FYI",
    "Heads up,",
    "Hey!",
    "Morning -",
    "Update:",
    "Re:",
    "Sorry for the delay,",
    "Good news:",
    "Reminder:",
]
BODIES = [
    "can we move the sync to 3pm?",
    "the build is green again",
    "I pushed the fixes",
    "who has the slides from Monday?",
    "dinner at 8 works for me",
    "invoice attached",
    "the customer confirmed the order",
    "let's ship it tomorrow",
    "call me when free",
    "tickets are booked",
    "can you review my PR?",
    "the demo went really well",
    "running 10 minutes late",
    "new numbers look great",
    "is the office open today?",
]


@dataclass
class Chat:
    """A conversation on one account, with the people who write in it."""

    chat_id: str
    title: str
    members: list[tuple[str, str]]  # (sender id, name)


class FakeTraffic:
    """A seeded source of messages spread over many chats."""

    def __init__(self, seed: int | None = None, chats_per_account: int = 6) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - demo data, not security
        self.chats_per_account = chats_per_account
        self._chats: dict[str, list[Chat]] = {}
        self._counter = self.rng.randrange(10**6, 10**7)

    def _person(self) -> tuple[str, str]:
        return str(
            self.rng.randrange(10**8, 10**9)
        ), f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    def chats(self, account_id: str) -> list[Chat]:
        """The account's chats, created on first use."""
        if account_id not in self._chats:
            self._chats[account_id] = [
                Chat(
                    str(self.rng.randrange(10**9, 10**10)),
                    self.rng.choice(TOPICS),
                    [self._person() for _ in range(self.rng.randint(1, 4))],
                )
                for _ in range(self.chats_per_account)
            ]
        return self._chats[account_id]

    def message(self, account_id: str) -> FakeMessage:
        """A new message in a random chat of the account."""
        chat = self.rng.choice(self.chats(account_id))
        sender_id, name = self.rng.choice(chat.members)
        self._counter += 1
        text = f"{self.rng.choice(OPENERS)} {self.rng.choice(BODIES)}"
        return FakeMessage(
            chat.chat_id, chat.title, sender_id, name, str(self._counter), text, datetime.now(UTC)
        )
