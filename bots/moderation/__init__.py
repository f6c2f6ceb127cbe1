"""Moderation: what may reach a persona, and what a persona may say."""
