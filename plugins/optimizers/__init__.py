"""Optimizers shipped with tuner, one module per family; each is a plugin of the `tuner` entry-point group."""
