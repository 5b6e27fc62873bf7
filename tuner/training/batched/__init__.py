"""Batched trials: K configurations of one optimizer trained together, in one vectorised run.

A study is many small trainings of one model with different hyperparameters. On a small model
each step costs mostly per-step overhead (Python, kernel launches), not arithmetic, so training K
configurations at once turns K small runs into one larger one. Each model parameter of shape
``S`` is stored once for all K configurations, stacked along a new leading dimension into one
leaf tensor of shape ``(K, *S)`` (what :func:`torch.func.stack_module_state` gives); the forward
and backward passes are vectorised over that dimension, and one optimizer step updates all K
slices, each with its own hyperparameters.

- :mod:`tuner.training.batched.optimizers`: the contract of a batched optimizer step
  (:class:`~tuner.training.batched.optimizers.BatchedOptimizer`), which configurations may share a
  batch (:func:`~tuner.training.batched.optimizers.batch_signature`) and how their hyperparameters
  are stacked (:func:`~tuner.training.batched.optimizers.stack_hyperparams`). Every float
  hyperparameter becomes a tensor of shape ``(K,)``; the others (booleans, categoricals, integers)
  must be equal within a batch, because they change the update's form rather than its numbers.
- The batched steps of the built-in optimizers, by family: :mod:`tuner.training.batched.sgd` (SGD
  with and without momentum), :mod:`tuner.training.batched.adaptive` (Adagrad, RMSprop, Adadelta
  and the Adam family), :mod:`tuner.training.batched.torch_optim` (which of those each
  ``torch.optim`` class takes, and torch's fused kernels called per configuration where the
  unbatched optimizer is fused), :mod:`tuner.training.batched.sign` (Lion, Tiger, signSGD, Signum),
  :mod:`tuner.training.batched.schedule_free`, :mod:`tuner.training.batched.lookahead` and
  :mod:`tuner.training.batched.more_adaptive` (Adan, ADOPT and AdEMAMix of the more-optimizers
  extra, without needing pytorch_optimizer). Each
  computes, slice by slice, the update of its unbatched optimizer (bit-identical on CPU);
  :func:`tuner.testing.batched_difference` checks that against the plugin's own optimizer.

An optimizer plugin opts in through ``OptimizerPlugin.build_batched``; one without it runs
unbatched.
"""
