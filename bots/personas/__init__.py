"""Personas at run time: a persona's config brought to life with its brain, voice and avatar
(:class:`bots.personas.runtime.PersonaRuntime`), its short-term context, prompts and lore."""
