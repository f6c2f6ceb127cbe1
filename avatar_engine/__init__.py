"""Text to performance: voices, mouth shapes, avatar renderers, clip encoding and workers.

This layer never imports ``bots`` or ``overlays``; it is the bottom of the dependency graph.
"""
