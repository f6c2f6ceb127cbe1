"""Audiences and conversation: platform adapters, the orchestrator, personas, the brain (LLM),
hearing, moderation and the command line. Uses ``avatar_engine`` and ``overlays``; never the
other way round."""
