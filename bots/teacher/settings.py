"""Settings of a persona's role beyond chatting: the language teacher."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vstage_core.settings import FrozenModel

CEFR = Literal["A1", "A2", "B1", "B2", "C1", "C2"]


class TeacherSettings(FrozenModel):
    """The persona teaches its language: speaks it at the learner's level, corrects mistakes
    the chosen way, and glosses in the learner's language in the transcript only."""

    target_language: str = Field(..., pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$",
                                 description="the language taught and spoken (ISO 639-1)")
    learner_language: str = Field("en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$",
                                  description="the learner's own language, for glosses")
    level: CEFR = Field("A2", description="CEFR level of the learner (A1-C2)")
    correction: Literal["off", "recast", "explicit"] = Field(
        "recast", description="off; recast (answer using the right form); explicit (one short "
        "correction before the answer, shown in the transcript)")
