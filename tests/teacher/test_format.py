"""The teacher's line format parsed from streamed deltas: the answer apart from the correction
and the gloss, in German and French, however the stream is chunked, and never a tag spoken."""

from __future__ import annotations

import random

import pytest

from bots.brain.sentences import SentenceCutter, speakable
from bots.teacher.format import TeacherStream, split_reply


def stream_in(text: str, sizes: list[int]) -> tuple[str, str | None, str | None, list[str]]:
    """Feed ``text`` in chunks of the given sizes (cycled); return the answer, the notes and
    the pieces a sentence cutter made of the answer as it streamed."""
    parser, cutter = TeacherStream(), SentenceCutter()
    answer, pieces, i, k = "", [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        part = parser.push(text[i:i + n])
        answer += part
        pieces += cutter.push(part)
        i, k = i + n, k + 1
    tail = parser.flush()
    answer += tail
    pieces += cutter.push(tail)
    pieces.append(cutter.flush() or "")
    return answer, parser.correction, parser.gloss, [speakable(p) for p in pieces if p.strip()]


CASES = [
    # German, the format as asked.
    ("[correction] Ich habe Hunger.\nSuper! Ich habe auch Hunger. Was isst du gern?\n"
     "[gloss] Great! I'm hungry too. What do you like to eat?",
     "Super! Ich habe auch Hunger. Was isst du gern?", "Ich habe Hunger.",
     "Great! I'm hungry too. What do you like to eat?"),
    # German labels instead of tags, markdown around them.
    ("**Korrektur:** Ich bin nach Hause gegangen.\nSehr gut! Wohin gehst du morgen?\n"
     "Übersetzung: Very good! Where are you going tomorrow?",
     "Sehr gut! Wohin gehst du morgen?", "Ich bin nach Hause gegangen.",
     "Very good! Where are you going tomorrow?"),
    # French: typographic space before the colon, the gloss on the same line as the answer.
    ("Correction : Je suis allée au marché.\nTrès bien ! Qu'est-ce que tu as acheté ? "
     "[gloss] Very good! What did you buy?",
     "Très bien ! Qu'est-ce que tu as acheté ?", "Je suis allée au marché.",
     "Very good! What did you buy?"),
    # French: an [answer] tag, a bullet, « quotes ».
    ("- [correction] J'ai faim.\n[answer] « Moi aussi ! » On mange ensemble ?\n"
     "Traduction : \"Me too!\" Shall we eat together?",
     "« Moi aussi ! » On mange ensemble ?", "J'ai faim.",
     "\"Me too!\" Shall we eat together?"),
    # A model that ignores the format: everything is the answer, nothing is lost.
    ("Hallo! Englisch ist schwer, Deutsch auch. Signale sind wichtig.",
     "Hallo! Englisch ist schwer, Deutsch auch. Signale sind wichtig.", None, None),
    ("Bonjour ! Le correcteur dit [bravo] et la traduction est facile.",
     "Bonjour ! Le correcteur dit [bravo] et la traduction est facile.", None, None),
]


@pytest.mark.parametrize(("text", "answer", "correction", "gloss"), CASES)
@pytest.mark.parametrize("sizes", [[1], [2, 5, 1], [3], [7, 1, 1], [10_000]])
def test_stream_splits_answer_and_notes(text, answer, correction, gloss, sizes):
    got, corr, glo, pieces = stream_in(text, sizes)
    assert " ".join(got.split()) == answer
    assert corr == correction
    assert glo == gloss
    spoken = " ".join(pieces).casefold()
    for word in ("[", "]", "correction", "korrektur", "gloss", "übersetzung", "traduction :"):
        if word not in answer.casefold():
            assert word not in spoken, (word, pieces)


def test_random_chunking_is_the_same_as_whole():
    rng = random.Random(14)
    for text, *_ in CASES:
        whole = split_reply(text)
        for _ in range(30):
            sizes = [rng.randint(1, 6) for _ in range(8)]
            got, corr, glo, _pieces = stream_in(text, sizes)
            assert (" ".join(got.split()), corr, glo) == (" ".join(whole[0].split()), *whole[1:])


def test_answer_streams_out_before_the_line_ends():
    """Only what may still be a tag is held back: the answer reaches the cutter as it comes,
    so the first sentence can be voiced while the model still writes."""
    parser = TeacherStream()
    out = parser.push("Guten Morgen! Wie")
    assert out.startswith("Guten Morgen!")
    assert "Wie" in out + parser.push(" geht")


def test_a_tag_split_across_deltas_is_never_released():
    parser = TeacherStream()
    out = "".join(parser.push(d) for d in ["Gut! [", "gl", "oss", "] Good!"]) + parser.flush()
    assert "[" not in out and "gloss" not in out
    assert parser.gloss == "Good!"
