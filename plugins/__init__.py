"""The plugins shipped with tuner, installed as the import package `tuner_plugins`."""
