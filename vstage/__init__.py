"""The ``vstage`` entry point: ``python -m vstage`` runs the command line (:mod:`bots.cli`).

The code lives in ``vstage_core`` (errors, settings base), ``avatar_engine`` (voice, avatar,
clips), ``overlays`` (stages) and ``bots`` (adapters, orchestrator, brain, CLI); see
``docs/architecture.md``.
"""
