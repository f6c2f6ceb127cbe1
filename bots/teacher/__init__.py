"""The language teacher: a persona that teaches its language (settings, prompt, transcript)."""
