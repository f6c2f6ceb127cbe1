"""Long-term memory of each persona about its viewers (facts, summaries, history)."""
