"""Render pools that run the heavy, blocking work of performances fairly across personas."""

from avatar_engine.workers.pool import LocalRenderPool, RemoteRenderPool, RenderPool

__all__ = ["LocalRenderPool", "RemoteRenderPool", "RenderPool"]
