"""Resilience and security suite: the client against every failure the gateway is known to produce."""
