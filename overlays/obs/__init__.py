"""Drive the streamer's real OBS Studio over obs-websocket 5: setup, show control, resilience.

``stage.ObsStage`` is a :class:`~overlays.stage.Stage`; ``setup.setup_obs`` creates what each
persona needs; ``driver.ObsDriver`` is the reconnecting async connection both use; their
settings are in the leaf ``settings`` module. See docs/obs.md.
"""
