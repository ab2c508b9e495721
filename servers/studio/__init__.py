"""Workbench Studio: the web console at `/ui` of `workbench serve --transport http`."""

from servers.studio.app import StudioContext, StudioGate, studio_app

__all__ = ["StudioContext", "StudioGate", "studio_app"]
