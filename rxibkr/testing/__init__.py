"""Testing kit: a scripted fake transport for virtual-time tests of strategies and of the client."""

from rxibkr.testing.transport import FakeConnection, FakeTransport, SentFrame, greeting_frames

__all__ = ["FakeConnection", "FakeTransport", "SentFrame", "greeting_frames"]
