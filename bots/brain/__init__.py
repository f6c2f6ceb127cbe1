"""The brain: LLM providers that stream a persona's reply (``base``: the ``LLM`` interface and
``create_llm``; ``local``, ``openai``), the sentence cutter and the brain's settings."""
