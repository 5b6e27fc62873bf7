"""Moved to :mod:`tuner.plugin.space`: the old path works for one release, with a warning."""

from tuner._moved import moved

moved(__name__, "tuner.plugin.space")
