"""The ``tuner`` subcommands, one module per noun; ``tuner/cli.py`` assembles them.

Each module imports only click at the top: torch, optuna and sqlalchemy load inside the commands
that need them, so ``tuner --help`` stays fast.
"""
