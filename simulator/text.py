"""Deterministic, plausible text and approximate token counts."""

from __future__ import annotations

import hashlib
import random

# Business-flavoured words, so that generated answers read like the prompts Switchboard routes
# (triage, extraction, summaries) rather than lorem ipsum.
VOCABULARY: tuple[str, ...] = (
    "account", "action", "agent", "analysis", "answer", "approval", "available", "balance",
    "billing", "budget", "calendar", "careful", "case", "category", "change", "channel",
    "check", "clear", "client", "cost", "customer", "data", "date", "decision", "delivery",
    "detail", "document", "draft", "due", "email", "error", "estimate", "evidence", "expected",
    "feature", "feedback", "field", "follow", "forecast", "goal", "helpful", "high", "issue",
    "item", "key", "latency", "likely", "limit", "list", "low", "main", "meeting", "message",
    "model", "month", "next", "note", "order", "outcome", "owner", "payment", "pending",
    "plan", "policy", "priority", "process", "product", "project", "question", "quick",
    "quote", "reason", "record", "refund", "report", "request", "result", "review", "risk",
    "route", "schedule", "section", "service", "shipment", "signal", "simple", "status",
    "step", "summary", "support", "system", "task", "team", "ticket", "timeline", "total",
    "update", "urgent", "usage", "user", "value", "vendor", "version", "week", "work",
    "and", "the", "with", "for", "from", "about", "after", "before", "this", "that", "should",
    "will", "can", "needs", "shows", "keeps", "covers", "confirms", "suggests", "requires",
)  # fmt: skip

_SHORT_SENTENCE, _LONG_SENTENCE = 6, 14
CHARS_PER_TOKEN = 4


def count_tokens(text: str) -> int:
    """Approximate token count: one token per 4 characters, rounded up.

    OpenAI's o200k tokenizer averages close to 4 characters per token on English prose and
    JSON. A real tokenizer needs a network download (tiktoken) or a 75 MB wheel (bpe-openai);
    the simulator only needs counts that are plausible, deterministic and cheap."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def seed_for(*parts: str) -> int:
    """A stable 64-bit seed (Python's hash() is randomised per process)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choices(VOCABULARY, k=count))


def prose(rng: random.Random, word_count: int) -> str:
    """Sentences of 6-14 vocabulary words, capitalised and full-stopped."""
    sentences: list[str] = []
    remaining = word_count
    while remaining > 0:
        length = min(remaining, rng.randint(_SHORT_SENTENCE, _LONG_SENTENCE))
        sentence = words(rng, length)
        sentences.append(f"{sentence[0].upper()}{sentence[1:]}.")
        remaining -= length
    return " ".join(sentences)
