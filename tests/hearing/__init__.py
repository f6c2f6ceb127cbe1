"""Tests of hearing in any language: the multilingual model install and STT."""
