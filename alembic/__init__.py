"""tuner's alembic migrations, installed as ``tuner.migrations``, run by ``tuner db upgrade``."""
