"""Performance to stage: the studio / overlay web server, its pages, and stage drivers.
Imports ``avatar_engine`` types only; never ``bots``."""
