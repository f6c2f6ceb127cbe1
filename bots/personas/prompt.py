"""The messages an LLM sees for one reply: persona prompt, recent exchanges, the new line."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bots.brain.base import ChatTurn
from bots.config import PersonaConfig

_LANGUAGES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
    "pt": "Portuguese", "ja": "Japanese", "ko": "Korean", "zh": "Chinese", "nl": "Dutch",
}


@dataclass(frozen=True, slots=True)
class Exchange:
    viewer: str
    said: str
    replied: str


def system_prompt(persona: PersonaConfig) -> str:
    lang = _LANGUAGES.get(persona.language.split("-")[0], persona.language)
    return (
        f"You are {persona.name}, a live streamer talking to your chat. "
        f"{persona.personality.strip()}\n"
        f"Answer in {lang}, in at most {persona.llm.max_sentences} short spoken sentences. "
        "No lists, no markdown, no emoji, no stage directions."
    )


def build_messages(
    persona: PersonaConfig, history: deque[Exchange], viewer: str, text: str
) -> list[ChatTurn]:
    msgs = [ChatTurn("system", system_prompt(persona))]
    for ex in history:
        msgs.append(ChatTurn("user", f"{ex.viewer}: {ex.said}"))
        msgs.append(ChatTurn("assistant", ex.replied))
    msgs.append(ChatTurn("user", f"{viewer}: {text}"))
    return msgs
