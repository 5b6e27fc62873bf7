"""The plugin layer: what an optimizer plugin declares and how plugins are found.

- :mod:`~tuner.plugin.hookspecs`: the hooks a plugin implements; their docstrings are the plugin
  author's manual.
- :mod:`~tuner.plugin.registry`: the registry that loads built-in, installed and local plugins.
- :mod:`~tuner.plugin.space`: search spaces (:class:`Float`, :class:`Int`, :class:`Categorical`).
- :mod:`~tuner.plugin.optimizer`: the optimizer contract (:class:`OptimizerPlugin`).
- :mod:`~tuner.plugin.objective`: the flat objective that second-order optimizers step on.

Plugin authors import these from :mod:`tuner` (``from tuner import OptimizerPlugin, Float``).
"""
