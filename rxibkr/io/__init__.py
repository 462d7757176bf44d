"""The I/O layer: the WebSocket transport and its reader thread, the REST session, TLS.

Knows sockets, TLS, WebSocket framing and cookies; knows no IBKR topic beyond what a handshake needs.
"""
