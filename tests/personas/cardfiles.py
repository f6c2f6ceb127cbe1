"""Character Cards built the way other apps write them, for the tests: JSON shaped as the
published V2 and V3 specs describe, embedded in a PNG with Pillow's own ``tEXt`` writer (not
vstage's), base64 of the UTF-8 JSON."""

from __future__ import annotations

import base64
import copy
import io
import json
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.personas.art import draw_character

V2_CARD: dict[str, Any] = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Seraphina",
        "description": "{{char}} is a forest guardian with pink hair who heals lost travellers.",
        "personality": "gentle, patient, protective, a little shy",
        "scenario": "{{user}} wakes up in {{char}}'s glade after a storm.",
        "first_mes": "*smiles softly* Welcome to my glade, {{user}}. I am {{char}}.",
        "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: I watch over this forest.\n"
                       "<START>\n{{user}}: Are you a witch?\n{{char}}: Only a healer.",
        "creator_notes": "A calm healer. Works best with short messages.",
        "system_prompt": "Write in a soft, caring voice. {{original}}",
        "post_history_instructions": "Stay gentle, even when {{user}} is rude.",
        "alternate_greetings": ["Oh! You are awake.", "The storm is over, {{user}}."],
        "character_book": {
            "name": "Eldoria",
            "description": "places of the forest",
            "scan_depth": 4,
            "token_budget": 400,
            "recursive_scanning": False,
            "extensions": {"world_info_depth": 3},
            "entries": [
                {
                    "keys": ["glade", "clearing"],
                    "content": "The glade is hidden from outsiders by old moonlight magic.",
                    "extensions": {"probability": 100},
                    "enabled": True,
                    "insertion_order": 10,
                    "case_sensitive": False,
                    "name": "glade",
                    "priority": 5,
                    "id": 1,
                    "comment": "the home",
                    "selective": False,
                    "secondary_keys": [],
                    "constant": False,
                    "position": "after_char",
                },
                {
                    "keys": ["Shadowfang"],
                    "content": "Shadowfang is the wolf who guards the northern border.",
                    "extensions": {},
                    "enabled": True,
                    "insertion_order": 20,
                    "case_sensitive": True,
                    "id": 2,
                },
                {
                    "keys": ["river"],
                    "secondary_keys": ["bridge"],
                    "selective": True,
                    "content": "The old bridge over the river collapsed last winter.",
                    "extensions": {},
                    "enabled": True,
                    "insertion_order": 30,
                    "position": 4,  # another app's number, not in the spec: kept as it is
                },
                {
                    "keys": [],
                    "content": "Eldoria is a quiet forest kingdom.",
                    "extensions": {},
                    "enabled": True,
                    "insertion_order": 1,
                    "constant": True,
                    "position": "before_char",
                },
                {
                    "keys": ["secret"],
                    "content": "This entry is switched off.",
                    "extensions": {},
                    "enabled": False,
                    "insertion_order": 40,
                },
            ],
        },
        "tags": ["fantasy", "healer", "female"],
        "creator": "test-suite",
        "character_version": "1.2",
        "extensions": {"talkativeness": "0.5", "fav": False, "depth_prompt": {"depth": 4}},
    },
}


def v3_card() -> dict[str, Any]:
    """The V2 card as V3: the V3 fields added, regex keys allowed."""
    card = copy.deepcopy(V2_CARD)
    card["spec"], card["spec_version"] = "chara_card_v3", "3.0"
    data = card["data"]
    data.update({
        "nickname": "Sera",
        "creator_notes_multilingual": {"en": "A calm healer.", "fr": "Une guérisseuse calme."},
        "source": ["https://example.invalid/cards/seraphina"],
        "group_only_greetings": ["Hello, travellers."],
        "creation_date": 1700000000,
        "modification_date": 1700000500,
        "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
    })
    for entry in data["character_book"]["entries"]:
        entry["use_regex"] = False
    data["character_book"]["entries"].append({
        "keys": ["/moon ?stones?/i"], "content": "Moonstones glow when danger is near.",
        "extensions": {}, "enabled": True, "insertion_order": 50, "use_regex": True, "id": 6,
    })
    return card


def png_with_text(texts: dict[str, str], *, image: Image.Image | None = None) -> bytes:
    """A PNG of the test character with ``texts`` as tEXt chunks (written by Pillow)."""
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    out = io.BytesIO()
    (image or draw_character()).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def b64(card: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(card).encode("utf-8")).decode("ascii")


def card_png(card: dict[str, Any], keyword: str = "chara") -> bytes:
    """A card PNG as SillyTavern writes it: base64 JSON in a tEXt chunk named ``keyword``."""
    return png_with_text({keyword: b64(card)})
