"""Personas at run time: a persona's config brought to life with its brain, voice and avatar."""

from bots.personas.runtime import PersonaRuntime

__all__ = ["PersonaRuntime"]
