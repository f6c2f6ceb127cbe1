"""Text to performance: voices, mouth shapes, avatar renderers, clip encoding and workers.

This layer never imports ``bots`` or ``overlays``; of vstage it imports only ``vstage_core``.
"""
