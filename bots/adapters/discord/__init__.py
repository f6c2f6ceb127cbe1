"""Discord: talk with a persona in a voice channel (and by mention in text), with transcripts.
See docs/discord.md."""
