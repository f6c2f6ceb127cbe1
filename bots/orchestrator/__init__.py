"""The orchestrator: accepts events, keeps a queue per persona and runs each reply's pipeline."""
