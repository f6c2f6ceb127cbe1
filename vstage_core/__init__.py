"""The bottom of vstage: the one exception root and the frozen settings base, shared by
``avatar_engine``, ``overlays`` and ``bots``. Imports nothing of vstage; all of them may
import it."""
