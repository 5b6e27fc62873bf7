"""Moved to :mod:`tuner.training.batched`; this path (and its submodules) works for one release,
with a DeprecationWarning."""

from tuner._moved import moved

moved(__name__, "tuner.training.batched")
