"""Developer tools run from a checkout (not shipped in the ``vstage`` distribution): e.g.
``python tools/draw_default_avatar.py config/avatars/default`` redraws the default avatar."""
