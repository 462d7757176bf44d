"""rxibkr: a ReactiveX client for the Interactive Brokers Client Portal Web API WebSocket."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
