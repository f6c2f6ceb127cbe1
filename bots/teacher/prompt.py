"""What a teacher persona's model is told: speak the target language at the learner's CEFR
level, correct the chosen way, and write corrections and glosses on tagged lines of their own
(the format :class:`~bots.teacher.format.TeacherStream` parses), which go to the transcript
and are never spoken.

The teacher's instructions are added to the persona's own system prompt
(:func:`bots.personas.prompt.build_messages`), so viewer text stays quoted data and each
viewer's history stays their own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from bots.brain.base import ChatTurn
from bots.config import PersonaConfig
from bots.personas.context import Exchange
from bots.personas.prompt import build_messages
from bots.teacher.settings import TeacherSettings

__all__ = ["build_teacher_messages", "language_name", "teacher_instructions", "wants_gloss"]

_NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "da": "Danish",
    "no": "Norwegian", "fi": "Finnish", "cs": "Czech", "ru": "Russian", "uk": "Ukrainian",
    "tr": "Turkish", "el": "Greek", "ja": "Japanese", "zh": "Chinese", "ko": "Korean",
    "ar": "Arabic", "hi": "Hindi",
}

_LEVELS = {
    "A1": "a beginner: use very common words and very short sentences in the present tense",
    "A2": "an elementary learner: use common words and short, simple sentences",
    "B1": "an intermediate learner: use everyday language, simple linking words, common tenses",
    "B2": "an upper-intermediate learner: speak naturally, avoid rare idioms",
    "C1": "an advanced learner: speak naturally, idioms are fine",
    "C2": "a near-native speaker: speak as you would to a native",
}

CORRECTION_TAG = "[correction]"
GLOSS_TAG = "[gloss]"

# The learner asking what something means or for a translation, in their language or the
# target language (matched on accent-folded, casefolded text).
_GLOSS_ASKS = re.compile(
    r"\b(translat\w*|what does .{1,40} mean|what do you mean|meaning|in english|"
    r"ubersetz\w*|was (heisst|bedeutet)|auf englisch|auf deutsch|"
    r"tradu\w*|que veut dire|ca veut dire quoi|qu'est-ce que ca veut dire|en anglais|"
    r"que significa|que quiere decir|en ingles|"
    r"cosa significa|che significa|in inglese|gloss)\b"
)


def language_name(code: str) -> str:
    """``"de"`` -> ``"German"`` (the code itself when unknown)."""
    return _NAMES.get(code.split("-")[0].casefold(), code)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def wants_gloss(text: str) -> bool:
    """Whether the learner asks for a translation or what something means."""
    return _GLOSS_ASKS.search(_fold(text)) is not None


def teacher_instructions(teacher: TeacherSettings, *, gloss: bool) -> str:
    """The teaching part of the system prompt.

    Args:
        gloss: the learner asked for a translation: ask for a gloss line after the answer.
    """
    target = language_name(teacher.target_language)
    learner = language_name(teacher.learner_language)
    lines = [
        f"You are also a {target} teacher. The learner's own language is {learner}; their "
        f"{target} level is {teacher.level} (CEFR), {_LEVELS[teacher.level]}.",
        f"Always answer in {target}, even when the learner writes in {learner} or mixes "
        "languages.",
    ]
    if teacher.correction == "recast":
        lines.append(
            "If the learner made a mistake, do not point it out: use the correct form "
            "naturally in your answer.")
    elif teacher.correction == "explicit":
        lines.append(
            f"If the learner's message has a mistake, first write one line starting with "
            f"{CORRECTION_TAG} and the corrected sentence in {target} (one short line); "
            "then your answer on the next line. No correction line when there is no mistake.")
    else:
        lines.append("Do not correct the learner's mistakes.")
    if gloss:
        lines.append(
            f"The learner asked for a translation: after your answer, write one line starting "
            f"with {GLOSS_TAG} and your answer translated into {learner}.")
    else:
        lines.append(f"Do not translate into {learner}.")
    lines.append(
        f"Write your answer itself without any tag. Lines starting with {CORRECTION_TAG} or "
        f"{GLOSS_TAG} are shown in the chat only; the answer is spoken aloud.")
    return "\n".join(lines)


def build_teacher_messages(
    persona: PersonaConfig,
    teacher: TeacherSettings,
    history: Sequence[Exchange],
    viewer: str,
    text: str,
    *,
    stage_note: str | None = None,
    memories: Sequence[str] = (),
) -> list[ChatTurn]:
    """The chat for one reply of a teacher: the persona's own messages
    (:func:`~bots.personas.prompt.build_messages`) with the teaching instructions added to
    the system turn; a gloss is asked for when the learner's line asks for one."""
    msgs = build_messages(persona, history, viewer, text, stage_note=stage_note,
                          memories=memories)
    extra = teacher_instructions(teacher, gloss=wants_gloss(text))
    if msgs and msgs[0].role == "system":
        msgs[0] = ChatTurn("system", f"{msgs[0].content}\n{extra}")
    else:
        msgs.insert(0, ChatTurn("system", extra))
    return msgs
