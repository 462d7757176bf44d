"""Shim: the metadata lives in setup.cfg; this adds the optional C accelerator of the reader.

``rxibkr.io._frames`` (rxibkr/io/_frames.c) is built when a C compiler and the Python headers are
there; when the build fails the install goes on without it and the reader runs in pure Python (the
same behaviour, slower). ``RXIBKR_PURE_PYTHON=1`` turns it off at run time.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("rxibkr.io._frames", ["rxibkr/io/_frames.c"], optional=True)])
