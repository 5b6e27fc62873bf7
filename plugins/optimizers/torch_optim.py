"""The optimizers of ``torch.optim`` as tuner plugins: SGD and its momentum forms, the adaptive
family (Adagrad, RMSprop, Adadelta, Adam, AdamW, AMSGrad, Adamax, NAdam, RAdam, Adafactor),
Rprop and L-BFGS. (torch's Muon and ASGD need more than a constructor call: they live in
:mod:`tuner_plugins.optimizers.muon` and :mod:`tuner_plugins.optimizers.asgd`.)

Every search-space name is the keyword ``torch.optim`` takes, except where torch takes a tuple,
which the space splits into floats (:func:`torch_kwargs`): Adam's ``betas`` into ``beta1`` and
``beta2``, Rprop's ``etas`` and ``step_sizes``, Adafactor's ``eps``. A conditional parameter
that is inactive (``decoupled_weight_decay`` while ``weight_decay`` is 0) is simply not passed,
so torch's default applies. Each optimizer is built with the fastest implementation torch has
for the parameters' device (see :func:`fastest_implementation`); the numbers are those of the
plain torch class.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tuner
from tuner.plugin.optimizer import OptimizerPlugin, TensorState, parameters_of
from tuner.plugin.space import Categorical, Float, Int

if TYPE_CHECKING:
    import torch

# Which implementation steps fastest on CPU, per torch.optim class (torch 2.13). Measured with
# bench/bench_torch_optim_impl.py on two ~5M-parameter MLPs, "wide" (1024-2048-1536-10, 6
# tensors) and "deep" (20 x Linear(512, 512), 40 tensors), in four runs at 1 and 2 threads on a
# shared 2-core machine (see bench/RESULTS.md). Time per step relative to single-tensor (torch's
# CPU default): median over models and runs [range]; and single-tensor ms, wide / deep, 1 thread.
#
#   case               single ms    foreach            fused
#   SGD, momentum 0.9  6.4 / 6.8    0.94 [0.43-2.42]   0.32 [0.09-0.82]
#   SGD, Nesterov      8.6 / 7.8    0.93 [0.77-1.04]   0.35 [0.09-0.42]
#   SGD, momentum 0    1.1 / 1.2    0.99 [0.50-1.06]   1.06 [0.83-1.29]  (a tie: one axpy)
#   Adagrad            23 / 24      1.74 [0.99-2.81]   0.07 [0.02-0.20]
#   Adam               24 / 27      0.77 [0.43-1.23]   0.14 [0.08-0.25]
#   AdamW              40 / 15      0.91 [0.47-1.23]   0.12 [0.09-0.17]
#   Adam, amsgrad      45 / 31      0.83 [0.57-1.38]   0.15 [0.08-0.30]
#   RMSprop            24 / 27      1.05 [0.74-1.29]   -
#   Adadelta           38 / 35      1.75 [0.79-3.01]   -
#   Adamax             18 / 11      1.54 [0.46-1.99]   -
#   NAdam              50 / 31      0.99 [0.46-1.49]   -
#   RAdam              69 / 32      0.78 [0.34-1.22]   -
#   Adafactor          81 / 52      1.02 / 1.08        -   (one run, 1 thread: wide / deep)
#   Rprop             115 / 106     1.25 / 1.39        -   (one run, 1 thread)
#   ASGD, t0 0         25 / 21      0.83 / 1.19        -   (one run, 1 thread: a tie)
#
# Fused exists on CPU only for SGD, Adagrad, Adam and AdamW (checked: the other classes reject
# the keyword) and wins by 3-14x wherever there is state to update. On CPU, foreach is a loop over
# the tensors and helps only where it saves many small ops (RAdam); ties go to single-tensor,
# which allocates no whole-list temporaries. A class not listed takes foreach.
_CPU_IMPLEMENTATION: dict[str, str] = {
    "SGD": "fused",
    "Adagrad": "fused",
    "Adam": "fused",
    "AdamW": "fused",
    "RMSprop": "single",
    "Adadelta": "single",
    "Adamax": "single",
    "NAdam": "single",
    "RAdam": "foreach",
    "Adafactor": "single",
    "Rprop": "single",
    "ASGD": "single",
}

# Devices with fused kernels for every class that takes ``fused`` (SGD, Adagrad, Adam, AdamW).
_FUSED_DEVICES = {"cpu", "cuda"}


def _accepts(optimizer_class: type, keyword: str) -> bool:
    return keyword in inspect.signature(optimizer_class).parameters


def fastest_implementation(
    optimizer_class: type, params: list[torch.Tensor]
) -> dict[str, bool]:
    """The keyword arguments that select the fastest implementation of a torch.optim class.

    ``{"fused": True}`` where the class has a fused kernel for the parameters' device and dtype,
    ``{"foreach": True}`` or ``{"foreach": False}`` (single-tensor) otherwise, following the CPU
    measurements above; ``{}`` (torch's own choice) for a class with neither option (L-BFGS) or
    parameters spread over several devices.
    """
    import torch

    if not _accepts(optimizer_class, "foreach"):
        return {}
    params = parameters_of(params)
    devices = {p.device.type for p in params}
    if len(devices) != 1:
        return {}
    device = devices.pop()
    if device == "cpu":
        choice = _CPU_IMPLEMENTATION.get(optimizer_class.__name__, "foreach")
    else:
        choice = "fused"
    if choice == "fused" and not (
        device in _FUSED_DEVICES
        and _accepts(optimizer_class, "fused")
        and all(torch.is_floating_point(p) for p in params)
    ):
        choice = "foreach"
    return {"foreach": False} if choice == "single" else {choice: True}


def _leave_fused_on_sparse_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Fall back from fused to torch's default path if the first gradients are sparse.

    Fused SGD and Adagrad reject sparse gradients (``nn.Embedding(sparse=True)``), which their
    other paths handle; whether a model produces them is only known at the first step. The hook
    removes itself once it has seen gradients.
    """

    def check(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for group in opt.param_groups for p in group["params"]]
        if all(g is None for g in grads):
            return
        if any(g is not None and g.is_sparse for g in grads):
            for group in opt.param_groups:
                group["fused"] = False
                group["foreach"] = None
        handle.remove()

    handle = optimizer.register_step_pre_hook(check)


@dataclass(frozen=True)
class TorchBuild:
    """Builds one torch.optim class from a plugin's hyperparameters (the plugin's ``build``).

    Attributes:
        class_name: the class in ``torch.optim``.
        fixed: keyword arguments the plugin pins (``nesterov=True`` for ``nesterov``).
    """

    class_name: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # plugins are frozen dataclasses: keep them hashable
        return hash((self.class_name, tuple(sorted(self.fixed.items()))))

    def __call__(
        self, params: list[torch.Tensor], hyperparams: Mapping[str, Any]
    ) -> torch.optim.Optimizer:
        import torch

        optimizer_class = getattr(torch.optim, self.class_name)
        kwargs = {**self.fixed, **torch_kwargs(hyperparams)}
        kwargs.update(fastest_implementation(optimizer_class, params))
        optimizer = optimizer_class(params, **kwargs)
        if kwargs.get("fused"):
            _leave_fused_on_sparse_gradients(optimizer)
        return optimizer


@dataclass(frozen=True)
class BatchedBuild:
    """Builds the batched step of one torch.optim class (the plugin's ``build_batched``):
    :func:`tuner.training.batched.torch_optim.batched_torch_optimizer`, with torch's fused kernel
    called per configuration wherever :func:`fastest_implementation` makes the unbatched optimizer
    fused, so that both compute the same numbers.

    Attributes:
        class_name: the class in ``torch.optim``, as in the plugin's :class:`TorchBuild`.
        fixed: the keyword arguments the plugin pins, as in its :class:`TorchBuild`.
    """

    class_name: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.class_name, tuple(sorted(self.fixed.items()))))

    def __call__(self, groups: list[dict], hyperparams: Mapping[str, Any]) -> Any:
        import torch

        from tuner.training.batched.torch_optim import batched_torch_optimizer

        optimizer_class = getattr(torch.optim, self.class_name)
        slices = [p[0] for group in groups for p in group["params"]]
        fused = fastest_implementation(optimizer_class, slices).get("fused", False)
        return batched_torch_optimizer(
            self.class_name, groups, hyperparams, fixed=self.fixed, fused=fused
        )


# Space names that torch.optim takes as one tuple: (the tuple's keyword, its parts, torch's
# default for each part). A part the space leaves out keeps torch's default.
_TUPLES = (
    ("betas", ("beta1", "beta2"), (0.9, 0.999)),
    ("etas", ("etaminus", "etaplus"), (0.5, 1.2)),  # Rprop
    ("step_sizes", ("step_size_min", "step_size_max"), (1e-6, 50.0)),  # Rprop
    ("eps", ("eps1", "eps2"), (None, 1e-3)),  # Adafactor; eps1 None: the dtype's epsilon
)


def torch_kwargs(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """The torch.optim keyword arguments for space values: ``beta1``, ``beta2`` -> ``betas``;
    Rprop's ``etaminus``, ``etaplus`` -> ``etas`` and ``step_size_max`` -> ``step_sizes``;
    Adafactor's ``eps2`` -> ``eps``."""
    kwargs = dict(hyperparams)
    for keyword, parts, defaults in _TUPLES:
        if any(part in kwargs for part in parts):
            kwargs[keyword] = tuple(kwargs.pop(part, default)
                                    for part, default in zip(parts, defaults, strict=True))
    return kwargs


# -- search-space pieces shared by several optimizers ------------------------------------------

def _sgd_lr() -> Float:
    return Float("lr", 1e-4, 1.0, default=1e-2, log=True, help="step size")


def _adam_lr(default: float = 1e-3, recommended: float | None = 1e-3) -> Float:
    return Float(
        "lr", 1e-5, 1e-1, default=default, log=True, recommended=recommended,
        help="Kingma & Ba: 1e-3; 3e-4 is also common",
    )


def _l2(high: float = 1e-3) -> Float:
    return Float("weight_decay", 0.0, high, default=0.0, help="L2 penalty added to the gradient")


_MOMENTUM = Float(
    "momentum", 0.5, 0.99, default=0.9, recommended=0.9, help="heavy-ball coefficient"
)
_BETA1 = Float(
    "beta1", 0.5, 0.99, default=0.9, recommended=0.9, help="decay of the gradient average"
)
_BETA2 = Float(
    "beta2", 0.9, 0.9999, default=0.999, recommended=0.999,
    help="decay of the mean square",
)
_ADAM_EPS = Float(
    "eps", 1e-10, 1e-4, default=1e-8, log=True, recommended=1e-8,
    help="added to the denominator",
)
# Coupled (L2) decay for Adam-type optimizers wants ~1e-5..1e-3, decoupled decay ~1e-2..1e-1:
# one linear range from 0 up to 0.1 holds both, and the switch is tuned with it.
_ADAM_DECAY = Float(
    "weight_decay", 0.0, 0.1, default=0.0,
    help="L2 penalty, or decoupled decay (below)",
)
_DECOUPLED = Categorical(
    "decoupled_weight_decay", (False, True), default=False, when=("weight_decay", ">", 0),
    help="AdamW-style: shrink the weights directly",
)


def factored_elements(shape: tuple[int, ...], role: str) -> float:
    """Adafactor's state for one tensor: a row and a column of second moments for a matrix
    (over its last two dimensions, one pair per leading index), the full second moment for a
    vector."""
    if len(shape) < 2:
        return float(math.prod(shape))
    leading = math.prod(shape[:-2])
    return float(leading * (shape[-2] + shape[-1]))


def _plugins() -> list[OptimizerPlugin]:
    """The 15 plugins; ``state_multiple`` is the state size at the space's defaults."""
    adam_space = [_adam_lr(), _BETA1, _BETA2, _ADAM_EPS, _ADAM_DECAY, _DECOUPLED]
    lbfgs_history = 10
    return [
        OptimizerPlugin(
            name="sgd",
            summary="Plain stochastic gradient descent, no momentum.",
            space=[_sgd_lr(), _l2()],
            build=TorchBuild("SGD", {"momentum": 0.0}),
            build_batched=BatchedBuild("SGD", {"momentum": 0.0}),
            state_multiple=0,
            reference="Robbins & Monro 1951, A Stochastic Approximation Method; torch.optim.SGD",
        ),
        OptimizerPlugin(
            name="momentum",
            summary="SGD with heavy-ball momentum.",
            space=[
                _sgd_lr(), _MOMENTUM,
                Float("dampening", 0.0, 0.9, default=0.0,
                      help="scales the new gradient by 1 - dampening"),
                _l2(),
            ],
            build=TorchBuild("SGD", {"nesterov": False}),
            build_batched=BatchedBuild("SGD", {"nesterov": False}),
            state_multiple=1,  # momentum_buffer
            reference="Polyak 1964, Some methods of speeding up the convergence of iteration "
            "methods; torch.optim.SGD",
        ),
        OptimizerPlugin(
            name="nesterov",
            summary="SGD with Nesterov momentum (look-ahead gradient).",
            space=[_sgd_lr(), _MOMENTUM, _l2()],  # torch's Nesterov needs dampening 0
            build=TorchBuild("SGD", {"nesterov": True}),
            build_batched=BatchedBuild("SGD", {"nesterov": True}),
            state_multiple=1,  # momentum_buffer
            reference="Sutskever, Martens, Dahl & Hinton 2013, On the importance of "
            "initialization and momentum in deep learning (ICML); Nesterov 1983",
        ),
        OptimizerPlugin(
            name="adagrad",
            summary="Per-coordinate step sizes from the sum of all past squared gradients.",
            space=[
                Float("lr", 1e-3, 1.0, default=1e-2, log=True, recommended=1e-2,
                      help="step size"),
                Float("initial_accumulator_value", 0.0, 1.0, default=0.0,
                      help="starting sum of squares (TF: 0.1)"),
                Float("eps", 1e-10, 1e-4, default=1e-10, log=True,
                      help="added to the denominator"),
                _l2(),
            ],
            build=TorchBuild("Adagrad"),
            build_batched=BatchedBuild("Adagrad"),
            state_multiple=1,  # sum
            reference="Duchi, Hazan & Singer 2011, Adaptive Subgradient Methods for Online "
            "Learning and Stochastic Optimization (JMLR 12)",
        ),
        OptimizerPlugin(
            name="rmsprop",
            summary="Steps divided by a running RMS of the gradient (Hinton's RMSprop).",
            space=[
                Float("lr", 1e-5, 1e-1, default=1e-2, log=True, recommended=1e-3,
                      help="torch: 1e-2; Hinton, Keras: 1e-3"),
                Float("alpha", 0.8, 0.999, default=0.99, recommended=0.9,
                      help="decay of the mean square (Hinton: 0.9)"),
                Float("eps", 1e-10, 1e-4, default=1e-8, log=True,
                      help="added to the denominator"),
                Float("momentum", 0.0, 0.99, default=0.0, help="momentum on the scaled step"),
                Categorical("centered", (False, True), default=False,
                            help="divide by the variance (Graves)"),
                _l2(),
            ],
            build=TorchBuild("RMSprop"),
            build_batched=BatchedBuild("RMSprop"),
            # square_avg at the defaults; a sampled config adds 1 with momentum > 0
            # (momentum_buffer) and 1 with centered (grad_avg), up to 3.
            state_multiple=1,
            reference="Tieleman & Hinton 2012, Lecture 6.5 of Neural Networks for Machine "
            "Learning; centered form: Graves 2013, arXiv:1308.0850",
        ),
        OptimizerPlugin(
            name="adadelta",
            summary="RMSprop with a running RMS of past updates in the numerator; lr ~1.",
            space=[
                Float("lr", 1e-2, 10.0, default=1.0, log=True, recommended=1.0,
                      help="scales the update; the paper has none"),
                Float("rho", 0.8, 0.99, default=0.9, recommended=0.95,
                      help="decay of both averages (Zeiler: 0.95)"),
                Float("eps", 1e-8, 1e-4, default=1e-6, log=True, recommended=1e-6,
                      help="sets the size of the first steps"),
                _l2(),
            ],
            build=TorchBuild("Adadelta"),
            build_batched=BatchedBuild("Adadelta"),
            state_multiple=2,  # square_avg, acc_delta
            reference="Zeiler 2012, ADADELTA: An Adaptive Learning Rate Method, "
            "arXiv:1212.5701",
        ),
        OptimizerPlugin(
            name="adam",
            summary="Adaptive moment estimation: bias-corrected first and second moments.",
            space=adam_space,
            build=TorchBuild("Adam"),
            build_batched=BatchedBuild("Adam"),
            state_multiple=2,  # exp_avg, exp_avg_sq
            reference="Kingma & Ba 2015, Adam: A Method for Stochastic Optimization, "
            "arXiv:1412.6980",
        ),
        OptimizerPlugin(
            name="adamw",
            summary="Adam with decoupled weight decay.",
            space=[
                _adam_lr(), _BETA1, _BETA2, _ADAM_EPS,
                Float("weight_decay", 0.0, 0.2, default=1e-2, recommended=1e-2,
                      help="decoupled: shrink by lr * wd per step"),
            ],
            build=TorchBuild("AdamW"),
            build_batched=BatchedBuild("AdamW"),
            state_multiple=2,  # exp_avg, exp_avg_sq
            reference="Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization (ICLR), "
            "arXiv:1711.05101",
        ),
        OptimizerPlugin(
            name="amsgrad",
            summary="Adam whose denominator never shrinks (running max of the second moment).",
            space=adam_space,
            build=TorchBuild("Adam", {"amsgrad": True}),
            build_batched=BatchedBuild("Adam", {"amsgrad": True}),
            state_multiple=3,  # exp_avg, exp_avg_sq, max_exp_avg_sq
            reference="Reddi, Kale & Kumar 2018, On the Convergence of Adam and Beyond (ICLR)",
        ),
        OptimizerPlugin(
            name="adamax",
            summary="Adam with the infinity norm in place of the second moment.",
            space=[_adam_lr(default=2e-3, recommended=2e-3), _BETA1, _BETA2, _l2()],
            build=TorchBuild("Adamax"),
            build_batched=BatchedBuild("Adamax"),
            state_multiple=2,  # exp_avg, exp_inf
            reference="Kingma & Ba 2015, Adam: A Method for Stochastic Optimization, "
            "section 7.1, arXiv:1412.6980",
        ),
        OptimizerPlugin(
            name="nadam",
            summary="Adam with Nesterov momentum.",
            space=[
                _adam_lr(default=2e-3, recommended=2e-3), _BETA1, _BETA2,
                Float("momentum_decay", 1e-3, 3e-2, default=4e-3, log=True, recommended=4e-3,
                      help="momentum schedule (Dozat's psi)"),
                _ADAM_DECAY, _DECOUPLED,
            ],
            build=TorchBuild("NAdam"),
            build_batched=BatchedBuild("NAdam"),
            state_multiple=2,  # exp_avg, exp_avg_sq (mu_product is a scalar)
            reference="Dozat 2016, Incorporating Nesterov Momentum into Adam (ICLR workshop)",
        ),
        OptimizerPlugin(
            name="radam",
            summary="Adam with the variance of the adaptive step rectified in early steps.",
            space=[_adam_lr(), _BETA1, _BETA2, _ADAM_DECAY, _DECOUPLED],
            build=TorchBuild("RAdam"),
            build_batched=BatchedBuild("RAdam"),
            state_multiple=2,  # exp_avg, exp_avg_sq
            reference="Liu et al. 2020, On the Variance of the Adaptive Learning Rate and Beyond "
            "(ICLR), arXiv:1908.03265",
        ),
        OptimizerPlugin(
            name="adafactor",
            summary="Adam-like steps from factored second moments (a row and a column per "
            "matrix), relative to the weights' scale.",
            space=[
                Float("lr", 1e-4, 1.0, default=1e-2, log=True, recommended=1e-2,
                      help="cap on the relative step min(lr, 1/sqrt(t)); torch: 1e-2"),
                Float("beta2_decay", -1.0, -0.5, default=-0.8, recommended=-0.8,
                      help="second-moment decay 1 - t^c (Shazeer & Stern: c = -0.8)"),
                Float("eps2", 1e-4, 1e-2, default=1e-3, log=True, recommended=1e-3,
                      help="floor of the weights' RMS in the step (paper: 1e-3)"),
                Float("d", 1.0, 4.0, default=1.0, recommended=1.0,
                      help="update clipping threshold, >= 1 (paper: 1)"),
                Float("weight_decay", 0.0, 0.1, default=0.0,
                      help="decoupled: shrink by lr * wd per step"),
            ],
            build=TorchBuild("Adafactor"),
            state_multiple=TensorState(factored_elements, "rows + columns (n for vectors)"),
            # The step is lr times the weights' RMS (at least eps2), not lr itself.
            lr_meaning="relative step size",
            reference="Shazeer & Stern 2018, Adafactor: Adaptive Learning Rates with Sublinear "
            "Memory Cost (ICML), arXiv:1804.04235; torch.optim.Adafactor",
        ),
        OptimizerPlugin(
            name="rprop",
            summary="Resilient backpropagation: per-weight step sizes grown or shrunk by the "
            "gradient's sign (full batch).",
            space=[
                Float("lr", 1e-5, 1e-1, default=1e-2, log=True, recommended=1e-2,
                      help="every weight's first step (Riedmiller & Braun: 0.1)"),
                Float("etaminus", 0.3, 0.7, default=0.5, recommended=0.5,
                      help="step shrink on a sign change (paper: 0.5)"),
                Float("etaplus", 1.05, 1.5, default=1.2, recommended=1.2,
                      help="step growth while the sign holds (paper: 1.2)"),
                Float("step_size_max", 1e-2, 50.0, default=50.0, log=True, recommended=50.0,
                      help="largest step (paper: 50)"),
            ],
            build=TorchBuild("Rprop"),
            state_multiple=2,  # prev (the last gradient), step_size
            # Steps follow the gradient's sign with step sizes adapted from lr onwards: lr
            # sets only where they start.
            lr_meaning="initial step size",
            # A mini-batch gradient's sign flips from batch to batch, so the step sizes only
            # shrink: Rprop is a full-batch method (Hinton, Lecture 6e of Neural Networks for
            # Machine Learning; RMSprop was made for mini-batches instead).
            full_batch_only=True,
            reference="Riedmiller & Braun 1993, A Direct Adaptive Method for Faster "
            "Backpropagation Learning: The RPROP Algorithm (ICNN); torch.optim.Rprop",
        ),
        OptimizerPlugin(
            name="lbfgs",
            summary="Limited-memory BFGS quasi-Newton method with line search (full batch).",
            space=[
                Float("lr", 1e-2, 1.0, default=1.0, log=True, recommended=1.0,
                      help="first trial step; 1 = quasi-Newton step"),
                Int("history_size", 3, 100, default=lbfgs_history, log=True, recommended=10,
                    help="pairs kept (Nocedal-Wright: 3..20)"),
                Int("max_iter", 5, 50, default=20, help="iterations per step() call"),
                Categorical("line_search_fn", ("strong_wolfe", None), default="strong_wolfe",
                            help="None: fixed steps of lr"),
            ],
            build=TorchBuild("LBFGS"),
            # The state holds, each the size of the flattened parameters: the search direction d,
            # the previous gradient, and up to history_size pairs (old_dirs, old_stps); the rest
            # (ro, al, H_diag, t) are scalars. So 2 * history_size + 2 once the history is full:
            # after one step() on a problem that does not converge within max_iter (20) inner
            # iterations, as the default history (10) fills in 11.
            state_multiple=2 * lbfgs_history + 2,
            needs_closure=True,
            full_batch_only=True,
            reference="Liu & Nocedal 1989, On the limited memory BFGS method for large scale "
            "optimization; Nocedal & Wright, Numerical Optimization, ch. 7",
        ),
    ]


@tuner.hookimpl
def register_optimizers(register: Any) -> None:
    """Register the torch.optim optimizers."""
    for plugin in _plugins():
        register(plugin)
