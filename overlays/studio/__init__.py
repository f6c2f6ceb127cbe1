"""The local studio: a web server (``server``) for the studio page (type as a viewer, watch the
persona), transparent overlays for OBS browser sources, and the clip files they play."""
