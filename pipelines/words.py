"""Counted nouns for messages: "1 task", "2 tasks" (never "1 tasks" or "task(s)")."""
from __future__ import annotations

from typing import Optional


def noun_for(count: int, noun: str, plural: Optional[str] = None) -> str:
    return noun if count == 1 else plural or noun + "s"


def counted(count: int, noun: str, plural: Optional[str] = None) -> str:
    return f"{count} {noun_for(count, noun, plural)}"
