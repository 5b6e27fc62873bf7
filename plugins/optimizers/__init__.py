"""Optimizers shipped with tuner, one module per family.

Each module is a plugin of the ``tuner`` entry-point group, registered exactly as a third-party
plugin would be.
"""
