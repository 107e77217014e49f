"""Capture: one episode per top-level run, made storable and redacted on the caller's thread."""

from expscale_core.capture.recorder import EpisodeRecorder, episodes_from_messages, redact_episode

__all__ = ["EpisodeRecorder", "episodes_from_messages", "redact_episode"]
