"""Platform adapters: turn a platform's traffic into typed events for the orchestrator, and
carry outcomes (replies, refunds, transcripts) back to the platform. The interface is in
``base``; each platform is one module or package (``studio``, ``twitch``, ``discord``), with
its settings in a leaf ``settings`` module the app config imports without the adapter."""
