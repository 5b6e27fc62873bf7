"""The version of tuner (one place; ``tuner.__version__`` hands it on)."""

__version__ = "0.1.0"
