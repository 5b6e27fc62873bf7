"""The study layer: what a study is, before it is stored or run.

- :mod:`~tuner.study.spec`: :class:`~tuner.study.spec.StudySpec` and study files (TOML).
- :mod:`~tuner.study.training`: the training options a study fixes or tunes, and each run's
  options derived from them.
"""
