"""The exception raised for a caller's argument of the wrong type.

It derives from both TypeError and ValueError, so callers may catch either: the protocol layer's rule
is "bad arguments raise ValueError naming the argument", and a wrong type is also a TypeError.
"""

from __future__ import annotations


class ArgumentTypeError(TypeError, ValueError):
    """An argument has the wrong type; the message names the argument and what was expected."""
