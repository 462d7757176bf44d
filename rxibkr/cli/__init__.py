"""The ``rxibkr`` command line: one entry point (:func:`rxibkr.cli.main.main`), one module per sub-command."""
