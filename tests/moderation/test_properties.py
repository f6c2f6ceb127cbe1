"""Properties: moderation never raises on any text, and its fast path agrees with the gate."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.events import ChatMessage, Notice, Redemption, Role, Utterance, Viewer
from bots.moderation.errors import InputRejected
from bots.moderation.input import clean_viewer_text
from bots.moderation.matchers import CompiledModeration, compile_moderation
from bots.moderation.output import check_output
from bots.moderation.rules import _clean, check_input
from bots.moderation.settings import ModerationSettings


def compiled(**settings: Any) -> CompiledModeration:
    """The matchers of ``ModerationSettings(**settings)``, as the Moderator builds them."""
    return compile_moderation(ModerationSettings(**settings))


DEFAULTS = compiled()
STRICT = compiled(
    links={"policy": "block", "mods_exempt": False},
    spam={"mods_exempt": False, "max_repeats": 1, "repeat_min_share": 0.1},
    blocklist={"patterns": [r"\bfree\s+\w+"]},
    banned_users=["evil"],
    max_chars=50,
)
viewers = st.builds(
    Viewer,
    id=st.text(max_size=8),
    name=st.text(max_size=12),
    roles=st.frozensets(st.sampled_from(list(Role))),
)
# Plain text, text that looks like what moderation looks for, and anything at all.
suspicious = st.lists(
    st.sampled_from(
        ["fuck", "sh1t", "f.u.c.k", " ", ".", "dot", "com", "http://", "www.", "@", "$", "!!",
         "LOL", "lo", "😂", "\u200d", "\u0301", "ß", "ｆ", "مرحبا", "\n", "a" * 12, "x.gg/"]
    ),
    max_size=30,
).map("".join)
texts = st.one_of(st.text(max_size=400), suspicious, st.text(string.printable, max_size=80))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(text=texts, viewer=viewers, strict=st.booleans())
def test_check_input_never_raises(text, viewer, strict):
    for event in (
        ChatMessage(viewer=viewer, message=text),
        Utterance(viewer=viewer, message=text),
        Notice(viewer=viewer, kind="subscription", message=text),
        Redemption(viewer=viewer, reward_id="r", reward_title="t", redemption_id="i",
                   message=text),
    ):
        v = check_input(event, STRICT if strict else DEFAULTS)
        assert isinstance(v.allowed, bool) and isinstance(v.text, str)
        assert v.allowed == (v.rule is None) == (v.reason is None)


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_check_output_never_raises(text):
    v = check_output(text, DEFAULTS)
    assert v.allowed == (v.rule is None)


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(string.printable, max_size=60), st.text(max_size=60)),
       max_chars=st.integers(1, 80))
def test_fast_path_agrees_with_the_first_gate(text, max_chars):
    try:
        expected = clean_viewer_text(text, max_chars=max_chars)
    except InputRejected as e:
        with pytest.raises(InputRejected) as got:
            _clean(text, max_chars)
        assert got.value.reason == e.reason
    else:
        assert _clean(text, max_chars) == expected
