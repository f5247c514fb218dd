"""fitting: data, observables, losses, gradient routes, optimisation and interventions for grn.

The public surface; implementation lives in the ``_``-prefixed modules.
"""
