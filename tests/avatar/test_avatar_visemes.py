"""Mouth shapes from phonemes and from loudness: the mapping, the timeline clean-up, the
per-frame track's coarticulation rules, and the envelope fallback."""

from __future__ import annotations

import logging
import unicodedata

import numpy as np
import pytest
from avatar_helpers import HELLO, SAMPLE_RATE, timeline

from avatar_engine.types import PhonemeTiming
from avatar_engine.visemes import (
    SHAPE_CODE,
    SHAPES,
    envelope_track,
    mouth_track,
    phoneme_shape,
    shape_segments,
)

X, A, B, C, D, E, F, G, H = (SHAPE_CODE[s] for s in "XABCDEFGH")


def letters(codes: np.ndarray) -> str:
    return "".join(SHAPES[c] for c in codes)


def runs(codes: np.ndarray) -> list[tuple[int, int]]:
    """(code, length) runs."""
    out: list[tuple[int, int]] = []
    for c in codes.tolist():
        if out and out[-1][0] == c:
            out[-1] = (c, out[-1][1] + 1)
        else:
            out.append((c, 1))
    return out


# --- phoneme -> shape ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "shape"),
    [
        ("m", "A"),
        ("b", "A"),
        ("p", "A"),
        ("o", "E"),
        ("ɔ", "E"),
        ("ɚ", "E"),
        ("u", "F"),
        ("ʊ", "F"),
        ("w", "F"),
        ("f", "G"),
        ("v", "G"),
        ("l", "H"),
        ("ð", "H"),
        ("θ", "H"),
        ("a", "D"),
        ("ɑ", "D"),
        ("æ", "C"),
        ("ɛ", "C"),
        ("e", "C"),
        ("ʌ", "C"),
        ("i", "B"),
        ("ɪ", "B"),
        ("s", "B"),
        ("t", "B"),
        ("k", "B"),
        ("ɹ", "B"),
        ("ə", "B"),
        ("ɡ", "B"),
        ("ʃ", "B"),
        ("uː", "F"),
        ("ˈa", "D"),
        ("ã", "D"),
        ("t͡ʃ", "B"),
        ("^", "X"),
        ("$", "X"),
        (" ", "X"),
        ("␠", "X"),
        (",", "X"),
        (".", "X"),
        ("!", "X"),
        ("?", "X"),
        (";", "X"),
        ("…", "X"),
    ],
)
def test_phoneme_shapes(symbol: str, shape: str) -> None:
    assert phoneme_shape(symbol) == shape


def test_modifiers_have_no_shape() -> None:
    for symbol in ("ˈ", "ˌ", "ː"):
        assert phoneme_shape(symbol) is None


def test_unknown_symbol_is_slightly_open_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="avatar_engine.visemes.phonemes"):
        assert phoneme_shape("☃") == "B"
    assert "☃" in caplog.text


# --- phoneme timeline -> segments ------------------------------------------------------------


def shapes_of(entries) -> str:
    return "".join(s.shape for s in shape_segments(timeline(entries)))


def test_stress_mark_time_goes_to_the_next_phoneme() -> None:
    segs = shape_segments(timeline([("h", 0.1), ("ˈ", 0.05), ("a", 0.15)]))
    assert [(s.shape, round(s.start, 3), round(s.end, 3)) for s in segs] == [
        ("B", 0.0, 0.1),
        ("D", 0.1, 0.3),
    ]


def test_length_mark_extends_the_previous_phoneme() -> None:
    segs = shape_segments(timeline([("m", 0.05), ("u", 0.1), ("ː", 0.1), ("n", 0.05)]))
    assert [(s.shape, round(s.start, 3), round(s.end, 3)) for s in segs] == [
        ("A", 0.0, 0.05),
        ("F", 0.05, 0.25),
        ("B", 0.25, 0.3),
    ]


def test_short_pause_inside_speech_keeps_the_mouth_moving() -> None:
    segs = shape_segments(timeline([("a", 0.2), (" ", 0.06), ("o", 0.2)]))
    assert [s.shape for s in segs] == ["D", "E"]
    assert segs[0].end == pytest.approx(0.23)
    assert segs[1].start == pytest.approx(0.23)


def test_long_pause_rests_the_mouth() -> None:
    assert shapes_of([("a", 0.2), (",", 0.1), (" ", 0.1), ("o", 0.2)]) == "DXE"


def test_gaps_are_pauses_and_edges_are_silence() -> None:
    phonemes = (PhonemeTiming("a", 0.3, 0.5), PhonemeTiming("o", 0.8, 1.0))
    segs = shape_segments(phonemes)
    assert [s.shape for s in segs] == ["X", "D", "X", "E"]
    assert segs[0].start == 0.0
    assert shapes_of([("^", 0.1), (" ", 0.02), ("a", 0.2), (".", 0.02), ("$", 0.1)]) == "XDX"


def test_piper_sentence() -> None:
    segs = shape_segments(timeline(HELLO))
    shapes = "".join(s.shape for s in segs)
    assert shapes[0] == "X" and shapes[-1] == "X"
    assert "H" in shapes  # the l of hello and the ð of there
    assert "F" in shapes  # the ʊ of hello
    assert "X" in shapes[1:-1]  # the long pause after "chat!"
    for a, b in zip(segs, segs[1:], strict=False):  # contiguous, in order
        assert a.end == pytest.approx(b.start)
        assert a.start <= a.end


# --- per-frame mouth track -------------------------------------------------------------------


def test_track_type_length_and_silent_edges() -> None:
    phonemes = timeline([("^", 0.3), ("a", 0.3), ("$", 0.2)])
    codes = mouth_track(phonemes, n_frames=40, fps=25)  # 1.6 s, past the last phoneme
    assert codes.dtype == np.int8 and codes.shape == (40,)
    assert codes[:6].tolist() == [X] * 6
    assert (codes[7:14] == D).all()
    assert (codes[21:] == X).all()


def test_empty_or_silent_timeline_is_all_rest() -> None:
    assert (mouth_track((), n_frames=10, fps=25) == X).all()
    assert (mouth_track(timeline([("^", 0.2), ("$", 0.2)]), n_frames=10, fps=25) == X).all()
    assert mouth_track((), n_frames=0, fps=25).shape == (0,)


@pytest.mark.parametrize("fps", [25, 30, 60])
def test_no_flicker_shapes_are_held(fps: int) -> None:
    # Vowels of 25 ms each: far shorter than a frame at 25 fps.
    vowels = ["a", "i", "o", "ɛ", "u", "ə", "æ", "ɔ"] * 6
    phonemes = timeline([("^", 0.2)] + [(v, 0.025) for v in vowels] + [("$", 0.2)])
    n = int(np.ceil(phonemes[-1].end * fps))
    codes = mouth_track(phonemes, n_frames=n, fps=fps)
    hold = max(2, round(0.08 * fps))
    rs = runs(codes)
    for i, (code, length) in enumerate(rs):
        edge_rest = code == X and i in (0, len(rs) - 1)
        if code not in (A, G) and not edge_rest:
            assert length >= hold, letters(codes)


def test_closure_shorter_than_a_frame_still_shows() -> None:
    # The m falls between two frame centres (0.18 s and 0.22 s at 25 fps).
    phonemes = timeline([("a", 0.185), ("m", 0.03), ("a", 0.2), ("$", 0.2)])
    for anticipation in (0.0, 0.03):
        codes = mouth_track(phonemes, n_frames=16, fps=25, anticipation_s=anticipation)
        assert (codes == A).sum() >= 1, letters(codes)
        assert runs(codes)[1][0] == A  # D, then the closure, then D


def test_bilabials_in_a_word_close_the_lips() -> None:
    # "maybe" and "purple": every p/b/m shows as A.
    for entries in (
        [
            ("^", 0.2),
            ("m", 0.04),
            ("ˈ", 0.02),
            ("e", 0.1),
            ("ɪ", 0.06),
            ("b", 0.03),
            ("i", 0.12),
            ("$", 0.2),
        ],
        [
            ("^", 0.2),
            ("p", 0.03),
            ("ˈ", 0.02),
            ("ɜ", 0.1),
            ("ː", 0.05),
            ("p", 0.03),
            ("ə", 0.04),
            ("l", 0.08),
            ("$", 0.2),
        ],
    ):
        phonemes = timeline(entries)
        codes = mouth_track(phonemes, n_frames=int(phonemes[-1].end * 25) + 1, fps=25)
        closures = sum(1 for code, _ in runs(codes) if code == A)
        assert closures == 2, letters(codes)


def test_anticipation_moves_onsets_not_offsets() -> None:
    phonemes = timeline([("^", 0.51), ("a", 0.5), ("$", 0.5)])
    late = mouth_track(phonemes, n_frames=38, fps=25, anticipation_s=0.0)
    early = mouth_track(phonemes, n_frames=38, fps=25, anticipation_s=0.03)
    first_late, first_early = np.flatnonzero(late == D)[0], np.flatnonzero(early == D)[0]
    assert first_late == 13  # centre 0.54 s
    assert first_early == 12  # centre 0.50 s: the mouth opens ~1 frame before the sound
    assert np.flatnonzero(late == D)[-1] == np.flatnonzero(early == D)[-1]


def test_piper_sentence_track() -> None:
    phonemes = timeline(HELLO)
    n = int(np.ceil(phonemes[-1].end * 25))
    codes = mouth_track(phonemes, n_frames=n, fps=25)
    text = letters(codes)
    assert text[0] == "X" and text[-1] == "X"
    assert "XXXX" in text[10:-6]  # "chat! ... Great": the mouth rests in the long pause
    assert len(set(text)) >= 5


# --- envelope fallback -----------------------------------------------------------------------


def tone(seconds: float, amplitude: float | np.ndarray = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


def test_envelope_silence_is_closed() -> None:
    codes = envelope_track(silence(1.0), SAMPLE_RATE, n_frames=25, fps=25)
    assert codes.dtype == np.int8 and (codes == X).all()


def test_envelope_noise_floor_is_gated() -> None:
    noise = np.random.default_rng(1).normal(0, 10 ** (-65 / 20), SAMPLE_RATE).astype(np.float32)
    assert (envelope_track(noise, SAMPLE_RATE, n_frames=25, fps=25) == X).all()


def test_envelope_loud_speech_opens_with_rest_at_the_edges() -> None:
    audio = np.concatenate([silence(0.4), tone(0.8, 0.6), silence(0.4)])
    codes = envelope_track(audio, SAMPLE_RATE, n_frames=40, fps=25)
    assert (codes[:8] == X).all() and (codes[-8:] == X).all()
    assert np.isin(codes[12:28], [C, D]).all(), letters(codes)


def test_envelope_is_monotonic_in_loudness() -> None:
    # A slow crescendo from -40 dBFS to 0 dBFS: the mouth only ever opens wider.
    gain = 10 ** (np.linspace(-40, 0, round(2.0 * SAMPLE_RATE)) / 20)
    audio = np.concatenate([silence(0.2), tone(2.0, gain)])
    codes = envelope_track(audio, SAMPLE_RATE, n_frames=55, fps=25)
    voiced = codes[codes != X]
    openness = np.array([{A: 0, B: 1, C: 2, D: 3}[c] for c in voiced.tolist()])
    assert (np.diff(openness) >= 0).all(), letters(codes)
    assert openness[0] <= 1 and openness[-1] == 3


def test_envelope_short_gap_closes_lips_long_gap_rests() -> None:
    audio = np.concatenate(
        [silence(0.2), tone(0.4), silence(0.08), tone(0.4), silence(0.5), tone(0.4), silence(0.2)]
    )
    codes = envelope_track(audio, SAMPLE_RATE, n_frames=round(2.18 * 25), fps=25)
    text = letters(codes)
    inner = text.strip("X")
    assert "A" in inner  # the 80 ms gap
    assert "XXXX" in inner  # the 500 ms pause


def test_envelope_accepts_int16_and_stereo() -> None:
    audio = np.concatenate([silence(0.2), tone(0.6), silence(0.2)])
    ref = envelope_track(audio, SAMPLE_RATE, n_frames=25, fps=25)
    pcm = (audio * 32767).astype(np.int16)
    assert (envelope_track(pcm, SAMPLE_RATE, n_frames=25, fps=25) == ref).all()
    stereo = np.stack([audio, audio], axis=1)
    assert (envelope_track(stereo, SAMPLE_RATE, n_frames=25, fps=25) == ref).all()


# --- IPA beyond English (German, French, Spanish, and anything else) ---------------------------


@pytest.mark.parametrize(
    ("symbol", "shape"),
    [
        # German: umlauts, ich-/ach-Laut, uvular r, lax rounded front vowels, -er
        ("y", "F"), ("yː", "F"), ("ʏ", "F"), ("ø", "F"), ("øː", "F"), ("œ", "E"),
        ("ç", "B"), ("x", "B"), ("ʁ", "B"), ("ɐ", "C"), ("ɐ̯", "C"), ("pf", "A"), ("ts", "B"),
        ("ɔø", "E"), ("aɪ", "D"),
        # French: nasal vowels (the tilde is stripped to the base vowel), ɥ
        ("ɑ̃", "D"), ("ɛ̃", "C"), ("ɔ̃", "E"), ("œ̃", "E"), ("ɥ", "F"),
        # Spanish: tap and trill, the approximants β ð ɣ, ñ
        ("ɾ", "B"), ("r", "B"), ("β", "A"), ("ð", "H"), ("ɣ", "B"), ("ɲ", "B"), ("ʎ", "H"),
        # precomposed letters decompose to their base
        ("ü", "F"), ("ä", "D"), ("o̞", "E"),
    ],
)
def test_ipa_beyond_english(symbol: str, shape: str) -> None:
    assert phoneme_shape(symbol) == shape


@pytest.mark.parametrize(
    ("symbol", "shape"),
    [
        ("ᴀ", "D"),  # small capital A: an open vowel
        ("ꭤ", "D"),  # turned a-like letter from Latin Extended-E
        ("ɷ", "F"),  # closed omega: rounded
        ("ʚ", "C"),  # closed open e
        ("ⱴ", "G"),  # v with curl: labiodental
        ("ɗ", "B"),  # implosive d
    ],
)
def test_symbols_outside_the_table_are_placed_by_class(symbol: str, shape: str) -> None:
    from avatar_engine.visemes.phonemes import PHONEME_SHAPES

    assert symbol not in PHONEME_SHAPES or symbol == "ɗ"
    assert phoneme_shape(symbol) == shape


def test_tone_marks_and_language_switches_have_no_shape() -> None:
    for symbol in ("˥", "˩", "5", "ʼ", "ᵊ", "(en)", "(cmn)", "\u0303", "\u0327"):
        assert phoneme_shape(symbol) is None, symbol
    # espeak's "(en)" inside a German sentence does not open or close the mouth.
    assert shapes_of([("a", 0.2), ("(en)", 0.0), ("o", 0.2)]) == "DE"


def piper_style(ipa: str, step: float = 0.06) -> tuple[PhonemeTiming, ...]:
    """An IPA string as Piper's alignments deliver it: one entry per code point, decomposed
    (Piper splits ``ç`` into ``c`` + the combining cedilla)."""
    return timeline([(ch, step) for ch in unicodedata.normalize("NFD", ipa)])


@pytest.mark.parametrize(
    ("ipa", "shapes"),
    [
        # "Bücher über München" (espeak-ng -v de --ipa)
        ("bˈyːçɜ ˌyːbɜ mˈynçən", "AFBCFACAFBBBB"),
        # "ich möchte acht Pfeffer"
        ("ɪç mˈœçtə ˈaxt pfˈɛfɜ", "BBAEBBBDBBAGCGC"),
        # "Un bon vin blanc"
        ("œ̃ bˈɔ̃ vˈɛ̃ blˈɑ̃", "EAEGCAHD"),
        # "lui huit rue"
        ("lyˌi yˈi ʁˈy", "HFBFBBF"),
        # "El perro", "señor", "agua y dedo"
        ("el pˈero", "CHACBE"),
        ("seɲˈoɾ", "BCBEB"),
        ("ˈaɣwa i ðˈeðo", "DBFDBHCHE"),
    ],
)
def test_phoneme_strings_of_german_french_spanish(ipa: str, shapes: str) -> None:
    segs = shape_segments(piper_style(ipa))
    assert "".join(s.shape for s in segs) == shapes
    # Stress marks, length marks and combining marks took no segment of their own.
    assert len(segs) < len(unicodedata.normalize("NFD", ipa))


def test_every_ipa_code_point_maps_without_crashing() -> None:
    blocks = [
        range(0x0250, 0x02B0),  # IPA Extensions
        range(0x02B0, 0x0300),  # Spacing Modifier Letters
        range(0x0300, 0x0370),  # Combining Diacritical Marks
        range(0x1D00, 0x1DC0),  # Phonetic Extensions (+ Supplement)
        range(0x0370, 0x0400),  # Greek (β θ χ ...)
        range(0x00C0, 0x0250),  # Latin-1 letters and Latin Extended-A/B
    ]
    symbols = [chr(c) for block in blocks for c in block if unicodedata.name(chr(c), "")]
    for s in symbols:
        assert phoneme_shape(s) in (None, *SHAPES), repr(s)
    # As one long timeline through the full track: contiguous segments, valid codes.
    phonemes = timeline([(s, 0.02) for s in symbols])
    segs = shape_segments(phonemes)
    for a, b in zip(segs, segs[1:], strict=False):
        assert a.end == pytest.approx(b.start)
    codes = mouth_track(phonemes, n_frames=int(phonemes[-1].end * 25) + 1, fps=25)
    assert len(set(codes.tolist())) >= 5
