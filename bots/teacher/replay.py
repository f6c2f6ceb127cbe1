"""Asking to hear the last reply again, slower: the ``!slower`` command or a short spoken or
typed request in the learner's or the target language. The orchestrator then replays the
persona's last reply to that viewer at a slower rate (:func:`bots.teacher.pace.slower`),
re-voiced from the same text, without asking the LLM."""

from __future__ import annotations

import re
import unicodedata

from bots.adapters.commands import parse_viewer_command

__all__ = ["wants_slower"]

_SLOW_WORDS = re.compile(
    r"\b(slower|slowly|more slowly|langsamer|langsam|plus lentement|lentement|moins vite|"
    r"mas despacio|despacio|mas lento|piu lentamente|piu piano|mais devagar|devagar)\b")
_REPEAT_WORDS = re.compile(
    r"\b(again|repeat|say (that|it)|one more time|noch ?(ein)?mal|wiederhol\w*|sag (das|es)|"
    r"encore|repete\w*|repeter|redi[st]\w*|otra vez|de nuevo|repit\w*|ancora|ripet\w*|"
    r"de novo|repet\w*)\b")
_POLITE = {"please", "pls", "bitte", "s", "il", "te", "speak", "talk", "say", "sprich", "sag",
           "parle", "parlez", "dis", "sagen", "sprechen", "reden", "dire", "decir", "hablar",
           "habla", "di", "it", "that", "das", "es", "ca", "le", "vous", "plait", "por", "favor",
           "per", "favore", "can", "you", "could", "kannst", "du", "konnen", "sie", "peux", "tu",
           "pouvez", "puedes", "the", "a", "little", "bit", "bisschen", "etwas", "un", "peu",
           "poco", "much", "way", "mas", "ein", "wenig", "more", "plus"}
_WORD = re.compile(r"\w+")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def wants_slower(text: str, *, spoken_phrases: bool = True) -> bool:
    """Whether ``text`` asks to hear the last reply again, slower: ``!slower``, or (when
    ``spoken_phrases``) a short request in English, German, French, Spanish, Italian or
    Portuguese ("say that again slower", "noch einmal langsamer, bitte", "plus lentement !").

    A line merely containing "slower" is not one: the request must be short and either
    name a repetition or say little besides "slower" and "please".
    """
    command = parse_viewer_command(text.strip())
    if command is not None:
        return command.command == "slower"
    if not spoken_phrases:
        return False
    folded = _fold(text)
    words = _WORD.findall(folded)
    if not words or len(words) > 10 or _SLOW_WORDS.search(folded) is None:
        return False
    if _REPEAT_WORDS.search(folded) is not None:
        return True
    rest = [w for w in _WORD.findall(_SLOW_WORDS.sub(" ", folded)) if w not in _POLITE]
    return not rest
