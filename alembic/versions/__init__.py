"""The migration scripts, oldest first: ``NNNN_<what>.py`` with ``revision = "NNNN"``."""
