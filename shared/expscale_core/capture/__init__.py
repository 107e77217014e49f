"""Capture: one episode per top-level run, redacted on the caller's thread, made storable as it is written."""

from expscale_core.capture.recorder import EpisodeRecorder, episodes_from_messages, redact_episode

__all__ = ["EpisodeRecorder", "episodes_from_messages", "redact_episode"]
