"""The ``grn`` command line (``grn simulate``, ``dsmts``, ``fit``, ``interventions``, ``demo``).

The top layer: it parses options and config files, calls `grn` and `fitting`, and writes files,
plots and reports. Nothing in `grn` or `fitting` imports it. Entry point: `grn_cli.main.main`.
"""
