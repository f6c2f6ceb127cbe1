"""Cutting streamed replies into speakable pieces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.brain.sentences import ReplyBudget, SentenceCutter, speakable, strip_label


def cut(text: str, step: int = 1, **kw) -> list[str]:
    c = SentenceCutter(**kw)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += c.push(text[i : i + step])
    if (rest := c.flush()) is not None:
        out.append(rest)
    return out


def test_sentences_and_first_clause():
    text = "Oh hey there chat, welcome back to the stream! How are you? I am great."
    assert cut(text) == [
        "Oh hey there chat,", "welcome back to the stream!", "How are you?", "I am great.",
    ]


def test_short_first_clause_is_not_cut():
    assert cut("Hi, all good? Yes.") == ["Hi, all good?", "Yes."]


def test_abbreviations_initials_and_decimals_do_not_cut():
    text = "Dr. Smith paid 3.50 dollars to J. R. Tolkien fans. Wow!"
    assert cut(text, first_clause_words=0) == [
        "Dr. Smith paid 3.50 dollars to J. R. Tolkien fans.", "Wow!",
    ]


def test_ellipsis_and_closing_quotes_stay_with_their_sentence():
    assert cut('She said "go!" Then... we went.') == ['She said "go!"', "Then...", "we went."]


def test_long_run_without_punctuation_is_cut_at_a_space():
    pieces = cut("word " * 100, max_piece_chars=50)
    assert all(len(p) <= 50 for p in pieces) and len(pieces) > 5


@given(st.text(alphabet="ab .,!?\n", max_size=200), st.integers(1, 7))
def test_cutting_loses_no_words(text, step):
    pieces = cut(text, step=step)
    assert " ".join(pieces).split() == text.split()
    assert all(p == p.strip() and p for p in pieces)


def test_budget_caps_pieces_and_chars():
    b = ReplyBudget(max_pieces=2, max_chars=30)
    assert b.admit("One two three.") == "One two three."
    assert b.admit("Four five six seven eight nine ten.") == "Four five six."
    assert b.exhausted and b.admit("More.") is None


def test_speakable_strips_markdown_links_emoji_and_stage_directions():
    raw = "**Hi** chat! (waves) Check https://example.com/x 🎉 *giggles* `ok`"
    assert speakable(raw) == "Hi chat! Check a link ok"


def test_first_clause_may_end_at_a_spaced_dash():
    assert cut("the game is called Winners - it is a gamble. Fun!") == [
        "the game is called Winners", "it is a gamble.", "Fun!",
    ]


@pytest.mark.parametrize("raw,expected", [
    ("Mika: Hello chat!", "Hello chat!"),
    ("**Mika:** Hello chat!", "Hello chat!"),
    ("Mika (waves): Hello chat!", "Hello chat!"),
    ("Assistant: Mika: Hi!", "Hi!"),
    ("Ann: you asked about tea", "you asked about tea"),
    ("Note: tea is great.", "Note: tea is great."),
    ("Fun fact: cats sleep a lot.", "Fun fact: cats sleep a lot."),
    ("Hello chat! Mika: is here", "Hello chat! Mika: is here"),
    ("nora_plays: Hello!", "Hello!"),
    ("quiet_quinn: I'm so glad you asked.", "I'm so glad you asked."),
    ("A: Luna Lofi is great.", "Luna Lofi is great."),
    ('nara_plays says: "Sounds great!"', '"Sounds great!"'),
    ("I would say: pizza.", "I would say: pizza."),
    ("Just remember: breathe.", "Just remember: breathe."),
])
def test_speaker_labels_are_stripped(raw, expected):
    assert strip_label(raw, names=("Mika", "Ann")) == expected


# --------------------------------------------------------------------------- other languages
# Real sentences as a German, French, Spanish or Japanese persona would say them, streamed in
# deltas of 1 to 5 characters (an LLM's tokens are about that size): every delta size must
# give the same pieces.

LANGUAGE_CASES = [
    ("de", "Wir treffen uns am 3. Oktober in Berlin. Bring z. B. Brot, Käse usw. mit! "
           "Dr. Weber kommt auch.",
     ["Wir treffen uns am 3. Oktober in Berlin.", "Bring z. B. Brot, Käse usw. mit!",
      "Dr. Weber kommt auch."]),
    ("de", "Er sagte: „Komm her! Schnell!“ Dann ging er. Das war's.",
     ["Er sagte: „Komm her! Schnell!“", "Dann ging er.", "Das war's."]),
    ("de", "Ich mag Äpfel, Birnen usw. Und du? Ich lese das 2. Buch, d. h. den zweiten Teil.",
     ["Ich mag Äpfel, Birnen usw.", "Und du?",
      "Ich lese das 2. Buch, d. h. den zweiten Teil."]),
    ("de", "Im 19. Jahrhundert war das anders. Ich bin 30. Und du?",
     ["Im 19. Jahrhundert war das anders.", "Ich bin 30.", "Und du?"]),
    ("de", "»Guten Morgen!«, rief sie. Wir lachten.",
     ["»Guten Morgen!«, rief sie.", "Wir lachten."]),
    ("fr", "M. Dupont et Mme Martin arrivent. « Bonjour ! Comment allez-vous ? » dit-il. "
           "Très bien, merci !",
     ["M. Dupont et Mme Martin arrivent.", "« Bonjour ! Comment allez-vous ? » dit-il.",
      "Très bien, merci !"]),
    ("fr", "Il y a des pommes, des poires, etc. Ensuite on part, c.-à-d. demain.",
     ["Il y a des pommes,", "des poires, etc.", "Ensuite on part, c.-à-d. demain."]),
    ("fr", "« Tu viens ? » Oui. Le Dr. Martin est là… mais pas longtemps.",
     ["« Tu viens ? »", "Oui.", "Le Dr. Martin est là…", "mais pas longtemps."]),
    ("es", "¡Hola! ¿Qué tal estás hoy, amigo mío, o prefieres descansar? La Sra. García "
           "llega, p. ej. a las tres. Creo que no. ¿Y tú?",
     ["¡Hola!", "¿Qué tal estás hoy, amigo mío, o prefieres descansar?",
      "La Sra. García llega, p. ej. a las tres.", "Creo que no.", "¿Y tú?"]),
    ("es", "«¿Vienes?», preguntó ella. Sí, claro. Vivo en EE. UU. desde 2010.",
     ["«¿Vienes?», preguntó ella.", "Sí, claro.", "Vivo en EE. UU. desde 2010."]),
    ("ja", "こんにちは！今日はいい天気ですね。「本当に？」と彼は聞いた。はい、そうです。",
     ["こんにちは！", "今日はいい天気ですね。", "「本当に？」と彼は聞いた。", "はい、そうです。"]),
    ("ja", "私は東京に住んでいます、でも大阪も好きです。すごい!本当?",
     ["私は東京に住んでいます、", "でも大阪も好きです。", "すごい!", "本当?"]),
    ("zh", "你好！今天天气很好。我们去公园吧？", ["你好！", "今天天气很好。", "我们去公园吧？"]),
    ("en", "I said no. Then we met at No. 5 Main St. and left. Apples, pears, etc. The end.",
     ["I said no.", "Then we met at No. 5 Main St. and left.", "Apples, pears, etc.",
      "The end."]),
]


@pytest.mark.parametrize("lang,text,expected", LANGUAGE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(LANGUAGE_CASES)])
def test_languages_streamed_in_small_deltas(lang, text, expected):
    for step in (1, 2, 3, 5):
        assert cut(text, step=step, language=lang) == expected, step


def test_language_decides_which_words_are_abbreviations():
    # Spanish "no." ends a sentence; English "No." before a number does not; a German
    # persona's "usw." before a lower-case word goes on.
    assert cut("Creo que no. Vale.", language="es", first_clause_words=0) == [
        "Creo que no.", "Vale."]
    assert cut("Mme Roux arrive.", language="fr") == ["Mme Roux arrive."]
    assert cut("Mme. Roux arrive.", language="fr") == ["Mme. Roux arrive."]
    assert cut("Äpfel usw. sind gut.", language="de-AT") == ["Äpfel usw. sind gut."]


def test_a_sentence_end_waits_for_the_word_that_decides_it():
    c = SentenceCutter(language="de")
    assert c.push("Wir sehen uns am 3. ") == []  # "3. Oktober" or "3. Dann"?
    assert c.push("Okt") == []
    assert c.push("ober wieder. ") == ["Wir sehen uns am 3. Oktober wieder."]
    c = SentenceCutter(language="en")
    assert c.push("Pears, etc. ") == []
    assert c.push("and more. ") == ["Pears, etc. and more."]


def test_no_cut_inside_quotes_until_too_long():
    text = "„" + "Das ist gut. " * 30 + "“ Ende."
    pieces = cut(text, step=3, language="de", max_piece_chars=100)
    assert all(len(p) <= 100 for p in pieces)
    # The forced cut falls at a sentence end inside the quote, not in the middle of one.
    assert all(p.endswith(("gut.", "Ende.")) for p in pieces)


def test_japanese_without_punctuation_is_cut_after_a_comma_when_too_long():
    text = "今日はとても楽しかった、" * 20
    pieces = cut(text, step=4, language="ja", max_piece_chars=50)
    assert all(len(p) <= 50 and p.endswith("、") for p in pieces)
    assert "".join(pieces) == text


def test_a_lone_ellipsis_is_not_a_piece():
    assert cut("Gut. … und dann? Na ja.", language="de") == ["Gut.", "… und dann?", "Na ja."]


def test_budget_shortens_japanese_with_a_full_stop():
    b = ReplyBudget(max_pieces=3, max_chars=12)
    assert b.admit("今日はとても楽しかった、また明日も来ます。") == "今日はとても楽しかった。"


@given(st.text(alphabet="aé .,!?¿¡«»„“\"'。、", max_size=120), st.integers(1, 6),
       st.sampled_from(["en", "de", "fr", "es", "ja"]))
def test_cutting_loses_no_words_in_any_language(text, step, lang):
    pieces = cut(text, step=step, language=lang)
    assert "".join("".join(pieces).split()) == "".join(text.split())
    assert all(p == p.strip() and p for p in pieces)


@pytest.mark.parametrize("raw,expected", [
    ("Élodie : Bonjour à tous !", "Bonjour à tous !"),
    ("ユイ：こんにちは！", "こんにちは！"),
    ("**Lena:** Hallo zusammen!", "Hallo zusammen!"),
    ("Hinweis: Tee ist gut.", "Hinweis: Tee ist gut."),
    ("note: tea is great.", "note: tea is great."),
])
def test_speaker_labels_in_any_script(raw, expected):
    assert strip_label(raw, names=("Élodie", "ユイ", "Lena")) == expected


def test_a_long_first_sentence_without_a_clause_mark_is_cut_early():
    """Nothing is said before the first piece: a run-on first sentence is cut at a space
    near ``first_piece_chars``, later ones only at ``max_piece_chars``."""
    run_on = " ".join(["baked eggs with bacon and sausage and mango"] * 6) + "."
    pieces = cut(run_on + " " + run_on, first_piece_chars=60)
    assert len(pieces[0]) <= 60 and pieces[0].startswith("baked eggs")
    assert all(len(p) > 60 for p in pieces[1:3])  # the rest is cut at sentence ends only
    assert " ".join(pieces).split() == (run_on + " " + run_on).split()
    assert cut("Short first. Then more.", first_piece_chars=60) == ["Short first.",
                                                                    "Then more."]
    assert cut(run_on, first_piece_chars=0, max_piece_chars=400) == [run_on]


def test_a_part_of_the_viewers_handle_is_a_label_too():
    """bench/show.py heard Lena say 'Luna: "I am not very good at music..."' to LunaLofi."""
    names = ("Lena", "LunaLofi")
    assert strip_label('Luna: "I am not very good at music."', names=names) == (
        '"I am not very good at music."')
    assert strip_label("Lofi: hi there", names=names) == "hi there"
    assert strip_label("Note: chess is fun.", names=names) == "Note: chess is fun."
    assert strip_label("Star: hello", names=("star_gazer99",)) == "hello"
