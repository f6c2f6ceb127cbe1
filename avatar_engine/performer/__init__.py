"""Performers: one per persona, turning voiced sentences into the avatar's frames on the
persona's own continuous frame clock, locally or on RabbitMQ workers."""

from avatar_engine.performer.base import OrderedClock, Performer
from avatar_engine.performer.factory import create_performer
from avatar_engine.performer.local import LocalPerformer
from avatar_engine.performer.remote import RemotePerformer
from avatar_engine.performer.render import render_idle, render_speech

__all__ = [
    "LocalPerformer",
    "OrderedClock",
    "Performer",
    "RemotePerformer",
    "create_performer",
    "render_idle",
    "render_speech",
]
