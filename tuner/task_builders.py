"""Moved to :mod:`tuner.task.builders`: the old path works for one release, with a warning."""

from tuner._moved import moved

moved(__name__, "tuner.task.builders")
