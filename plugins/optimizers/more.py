"""More optimizers from pytorch_optimizer (kozistr), the optional extra ``tuner[more-optimizers]``.

The optimizers people compare with AdamW in 2025-26 that neither torch nor tuner ships:

- matrix preconditioners: SOAP (Adam in Shampoo's eigenbasis), Shampoo, PSGD Kron;
- element-wise: AdEMAMix (a second, slow momentum), MARS (variance-reduced AdamW), CAME
  (confidence-guided, factored second moment), Adan (Nesterov-style gradient differences), ADOPT
  (Adam with the second moment of the previous step), LAMB (layer-wise trust ratio);
- learning-rate-free: Prodigy and D-Adaptation Adam, whose ``lr`` is a multiplier of the step
  size they estimate (``lr_meaning="multiplier"``; 1 is the authors' setting).

Each space takes its ranges and defaults from the authors' paper or README, named beside each
parameter; a hyperparameter the space leaves out keeps pytorch_optimizer's default, named in
the plugin's summary or below. Where pytorch_optimizer also ships an optimizer tuner has (Lion,
Tiger, Schedule-Free AdamW, SAM), tuner keeps its own; tests/test_more_optimizers.py shows the
two agree.

pytorch_optimizer is imported only when one of these optimizers is built
(:mod:`tuner_plugins.optimizers._pytorch_optimizer`): without it this module still loads, the
registry lists these optimizers as not installed (``requires``), and naming one says which
package to install.

State: Adan 4n, Prodigy 4n, AdEMAMix, MARS and D-Adapt Adam 3n, ADOPT and LAMB 2n. SOAP,
Shampoo, Kron and CAME keep per-matrix statistics that grow with each matrix's sides rather
than with its size (:class:`~tuner.plugin.optimizer.TensorState`); the functions below count
them per parameter shape, and tests/test_more_optimizers.py measures them on every built-in
task. The batched steps (K configurations at once) of Adan, ADOPT and AdEMAMix are in
:mod:`tuner.training.batched.more_adaptive`; the others train one configuration at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tuner import hookimpl
from tuner.errors import NotInstalledError
from tuner.plugin.optimizer import OptimizerPlugin, Requirement, TensorState
from tuner.plugin.space import Categorical, Float, Int
from tuner.training.batched.more_adaptive import BatchedAdan, BatchedAdEMAMix, BatchedADOPT

REQUIREMENT = Requirement("pytorch_optimizer", 'pip install "tuner[more-optimizers]"')

SOAP_MAX_SIDE = 10000
"""A side longer than this gets no SOAP preconditioner (pytorch_optimizer's
``max_precondition_dim``, the official code's ``max_precond_dim``)."""

KRON_MAX_SIDE = 8192
"""A side longer than this gets a diagonal Kron factor (pytorch_optimizer's and kron_torch's
``max_size_triangular``)."""


@dataclass(frozen=True)
class Build:
    """``build`` of one of these optimizers: the builder of that name in
    :mod:`tuner_plugins.optimizers._pytorch_optimizer`, imported on the first call."""

    name: str

    def __call__(self, params: list[Any], hp: Mapping[str, Any]) -> Any:
        try:
            from tuner_plugins.optimizers._pytorch_optimizer import BUILDERS
        except ModuleNotFoundError as error:
            if error.name != REQUIREMENT.module:
                raise
            raise NotInstalledError(REQUIREMENT.message(f"optimizer {self.name!r}")) from None
        return BUILDERS[self.name](params, hp)


# -- state that grows with the matrices' sides ---------------------------------------------------

def soap_state(shape: tuple[int, ...], role: str = "") -> int:
    """SOAP: Adam's two moments, and for a parameter of two or more dimensions a statistics
    matrix ``GG`` and its eigenbasis ``Q``, ``d x d`` each, per side ``d``."""
    sides = sum(d * d for d in shape if d <= SOAP_MAX_SIDE) if len(shape) >= 2 else 0
    return 2 * math.prod(shape) + 2 * sides


def shampoo_state(shape: tuple[int, ...], role: str = "") -> int:
    """Shampoo: its momentum (the last preconditioned gradient), and a statistics matrix and
    its inverse root, ``d x d`` each, per side ``d`` of every parameter, vectors included."""
    return math.prod(shape) + 2 * sum(d * d for d in shape)


def kron_state(shape: tuple[int, ...], role: str = "") -> int:
    """Kron: its momentum, and per side ``d`` a triangular ``d x d`` factor (stored dense) for
    a parameter of two or more dimensions, a diagonal of ``d`` for a vector or a long side."""
    if len(shape) < 2:
        return 2 * math.prod(shape)
    return math.prod(shape) + sum(d * d if d <= KRON_MAX_SIDE else d for d in shape)


def came_state(shape: tuple[int, ...], role: str = "") -> int:
    """CAME: its momentum; for a matrix the row and column means of the squared gradient and of
    the instability (Adafactor's factoring, over the last two dimensions); for a vector a full
    second moment."""
    count = math.prod(shape)
    if len(shape) < 2:
        return 2 * count
    return count + 2 * (count // shape[-1] + count // shape[-2])


# -- search-space pieces ---------------------------------------------------------------------

def _lr(low: float, high: float, default: float, source: str) -> Float:
    return Float("lr", low, high, default=default, log=True, recommended=default, help=source)


def _beta(name: str, low: float, high: float, default: float, source: str) -> Float:
    return Float(name, low, high, default=default, recommended=default, help=source)


def _decay(high: float, default: float, source: str) -> Float:
    return Float("weight_decay", 0.0, high, default=default, recommended=default, help=source)


_DECOUPLED = Categorical(
    "decoupled_weight_decay", (False, True), default=False, when=("weight_decay", ">", 0),
    help="AdamW-style: shrink the weights directly",
)


def _plugins() -> list[OptimizerPlugin]:
    """The eleven plugins."""
    common = {"requires": REQUIREMENT}
    return [
        OptimizerPlugin(
            name="soap",
            summary="SOAP: Adam in Shampoo's eigenbasis, refreshed every few steps; "
            "per-side matrices.",
            space=[
                _lr(1e-4, 3e-2, 3e-3, "SOAP README: 3e-3"),
                _beta("beta1", 0.5, 0.99, 0.95, "README: 0.95"),
                _beta("beta2", 0.9, 0.999, 0.95, "README: 0.95 (paper also 0.99)"),
                _decay(0.1, 0.01, "decoupled; README: 0.01"),
                Int("precondition_frequency", 1, 100, default=10, log=True, recommended=10,
                    help="steps per eigenbasis refresh; README: 10"),
            ],
            build=Build("soap"),
            state_multiple=TensorState(soap_state, "2n + 2 d^2 per matrix side"),
            reference="Vyas et al. 2025, SOAP: Improving and Stabilizing Shampoo using Adam "
            "(ICLR), arXiv:2409.11321; github.com/nikhilvyas/SOAP",
            **common,
        ),
        OptimizerPlugin(
            name="shampoo",
            summary="Shampoo: one preconditioner per side, inverse roots every step.",
            space=[
                _lr(1e-3, 3.0, 0.1, "Adagrad-like (sums all past statistics): 0.1-0.3 best "
                    "on digits-mlp; pytorch_optimizer: 1e-3"),
                Float("momentum", 0.0, 0.99, default=0.0, recommended=0.0,
                      help="on the gradient; pytorch_optimizer: 0"),
                Float("weight_decay", 0.0, 1e-3, default=0.0, help="L2 penalty (coupled)"),
                Float("matrix_eps", 1e-8, 1e-2, default=1e-6, log=True, recommended=1e-6,
                      help="the paper's epsilon: start of each statistics matrix"),
                Int("preconditioning_compute_steps", 1, 100, default=1, log=True,
                    recommended=1, help="steps per inverse-root refresh (no step before the "
                    "first); pytorch_optimizer: 1"),
            ],
            build=Build("shampoo"),
            state_multiple=TensorState(shampoo_state, "n + 2 d^2 per side"),
            reference="Gupta, Koren & Singer 2018, Shampoo: Preconditioned Stochastic Tensor "
            "Optimization (ICML), arXiv:1802.09568",
            **common,
        ),
        OptimizerPlugin(
            name="kron",
            summary="PSGD Kron: Kronecker-factored preconditioner fitted to the gradients' "
            "whitening.",
            space=[
                _lr(1e-5, 1e-1, 1e-3, "kron_torch README: Adam-like, maybe /2"),
                _beta("momentum", 0.5, 0.99, 0.9, "kron_torch README: b1 0.9"),
                _decay(0.1, 0.0, "decoupled, matrices only; README: Adam-like"),
            ],
            build=Build("kron"),
            state_multiple=TensorState(kron_state, "n + d^2 per matrix side; vectors 2n"),
            reference="Li 2018, Preconditioned Stochastic Gradient Descent (IEEE TNNLS), "
            "arXiv:1512.04202; Kron: github.com/lixilinx/psgd_torch, "
            "github.com/evanatyourservice/kron_torch",
            **common,
        ),
        OptimizerPlugin(
            name="ademamix",
            summary="AdEMAMix: Adam plus a slow momentum (beta3) mixed in by alpha.",
            space=[
                _lr(1e-5, 1e-1, 1e-3, "paper: AdamW's"),
                _beta("beta1", 0.5, 0.99, 0.9, "paper: 0.9"),
                _beta("beta2", 0.9, 0.9999, 0.999, "paper: 0.999"),
                _beta("beta3", 0.99, 0.99999, 0.9999, "slow momentum; paper: 0.9999"),
                Float("alpha", 1.0, 20.0, default=5.0, recommended=5.0,
                      help="weight of the slow momentum; paper: 5 (4-10 work)"),
                Int("t_alpha_beta3", 1, 100000, default=1000, log=True, recommended=1000,
                    help="warm-up of alpha and beta3 (1: none); paper: the run's length"),
                _decay(0.2, 0.0, "decoupled; paper: 0.1 on language models"),
            ],
            build=Build("ademamix"),
            build_batched=BatchedAdEMAMix,
            state_multiple=3,  # exp_avg, exp_avg_sq, exp_avg_slow
            reference="Pagliardini, Ablin & Grangier 2025, The AdEMAMix Optimizer: Better, "
            "Faster, Older (ICLR), arXiv:2409.03137",
            **common,
        ),
        OptimizerPlugin(
            name="prodigy",
            summary="Prodigy: Adam whose step size it estimates itself; lr is a multiplier "
            "(1).",
            space=[
                _lr(0.5, 2.0, 1.0, "a multiplier; README: keep 1, tune d_coef instead"),
                Float("d_coef", 0.1, 10.0, default=1.0, log=True, recommended=1.0,
                      help="scales the estimate; README: 0.1-10"),
                _beta("beta1", 0.5, 0.99, 0.9, "README: 0.9"),
                _beta("beta2", 0.9, 0.9999, 0.999, "README: 0.999 (0.99 for diffusion)"),
                _decay(0.1, 0.0, "decoupled; README: 0 by default, 0.01 for diffusion"),
                Categorical("safeguard_warmup", (False, True), default=False,
                            recommended=False, help="README: True with a warm-up"),
                Categorical("bias_correction", (False, True), default=False,
                            recommended=False, help="README: True for diffusion models"),
            ],
            build=Build("prodigy"),
            state_multiple=4,  # s, p0, exp_avg, exp_avg_sq
            lr_meaning="multiplier",
            reference="Mishchenko & Defazio 2024, Prodigy: An Expeditiously Adaptive "
            "Parameter-Free Learner (ICML), arXiv:2306.06101; github.com/konstmish/prodigy",
            **common,
        ),
        OptimizerPlugin(
            name="dadapt-adam",
            summary="D-Adaptation Adam: learning-rate free; lr is a multiplier of its "
            "estimate (1).",
            space=[
                _lr(0.1, 10.0, 1.0, "a multiplier; README: 1, scales the estimate"),
                _beta("beta1", 0.5, 0.99, 0.9, "README: Adam's 0.9"),
                _beta("beta2", 0.9, 0.9999, 0.999, "README: Adam's 0.999"),
                _decay(0.1, 0.0, "README: as for Adam"),
                _DECOUPLED,
            ],
            build=Build("dadapt-adam"),
            state_multiple=3,  # s, exp_avg, exp_avg_sq
            lr_meaning="multiplier",
            reference="Defazio & Mishchenko 2023, Learning-Rate-Free Learning by "
            "D-Adaptation (ICML), arXiv:2301.07733; github.com/facebookresearch/dadaptation",
            **common,
        ),
        OptimizerPlugin(
            name="mars",
            summary="MARS-AdamW: AdamW on a variance-reduced gradient; vectors by AdamW at "
            "lr/2.",
            space=[
                _lr(1e-4, 3e-2, 3e-3, "authors' GPT-2 configs: 2e-3 to 6e-3"),
                Float("gamma", 0.005, 0.1, default=0.025, log=True, recommended=0.025,
                      help="strength of the correction; paper: 0.025"),
                _beta("beta1", 0.8, 0.99, 0.95, "configs: 0.95"),
                _beta("beta2", 0.9, 0.999, 0.99, "configs: 0.99"),
                _decay(0.1, 0.01, "decoupled, matrices; configs: 0.01"),
            ],
            build=Build("mars"),
            state_multiple=3,  # exp_avg, exp_avg_sq, last_grad
            reference="Yuan et al. 2024, MARS: Unleashing the Power of Variance Reduction for "
            "Training Large Models, arXiv:2411.10438; github.com/AGI-Arena/MARS (vectors: "
            "AdamW at lr/2, betas (0.9, 0.95), weight decay 0.1, as its configs)",
            **common,
        ),
        OptimizerPlugin(
            name="came",
            summary="CAME: Adafactor-style factored moments scaled by update confidence.",
            space=[
                _lr(1e-5, 1e-2, 2e-4, "CAME README: 2e-4"),
                _beta("beta1", 0.5, 0.99, 0.9, "README: 0.9"),
                _beta("beta2", 0.9, 0.9999, 0.999, "README: 0.999"),
                _beta("beta3", 0.99, 0.99999, 0.9999, "instability average; README: 0.9999"),
                _decay(0.1, 0.01, "decoupled; README: 0.01"),
            ],
            build=Build("came"),
            state_multiple=TensorState(came_state, "n + 2(rows + cols) per matrix; vectors 2n"),
            reference="Luo et al. 2023, CAME: Confidence-guided Adaptive Memory Efficient "
            "Optimization (ACL), arXiv:2307.02047; github.com/yangluo7/CAME",
            **common,
        ),
        OptimizerPlugin(
            name="adan",
            summary="Adan: adaptive Nesterov momentum from gradient differences; proximal "
            "decay.",
            space=[
                _lr(1e-5, 1e-1, 1e-3, "pytorch_optimizer: 1e-3; the paper's peak lrs are "
                    "above AdamW's"),
                _beta("beta1", 0.5, 0.99, 0.98, "paper and README: 0.98"),
                _beta("beta2", 0.5, 0.99, 0.92, "gradient differences; README: 0.92"),
                _beta("beta3", 0.9, 0.9999, 0.99, "second moment; README: 0.99"),
                _decay(0.1, 0.02, "proximal, as the official code; README: 0.02"),
            ],
            build=Build("adan"),
            build_batched=BatchedAdan,
            state_multiple=4,  # exp_avg, exp_avg_sq, exp_avg_diff, previous_grad
            reference="Xie et al. 2024, Adan: Adaptive Nesterov Momentum Algorithm for Faster "
            "Optimizing Deep Models (TPAMI), arXiv:2208.06677; github.com/sail-sg/Adan",
            **common,
        ),
        OptimizerPlugin(
            name="adopt",
            summary="ADOPT: Adam normalised by the previous second moment, clipped; any beta2.",
            space=[
                _lr(1e-5, 1e-1, 1e-3, "README: 1e-3"),
                _beta("beta1", 0.5, 0.99, 0.9, "paper: 0.9"),
                _beta("beta2", 0.99, 0.99999, 0.9999, "paper: 0.9999"),
                Float("eps", 1e-8, 1e-4, default=1e-6, log=True, recommended=1e-6,
                      help="clamps the denominator; paper: 1e-6"),
                _decay(0.1, 0.0, "README: 0; decoupled as AdamW's optional"),
                _DECOUPLED,
            ],
            build=Build("adopt"),
            build_batched=BatchedADOPT,
            state_multiple=2,  # exp_avg, exp_avg_sq
            reference="Taniguchi et al. 2024, ADOPT: Modified Adam Can Converge with Any beta2 "
            "with the Optimal Rate (NeurIPS), arXiv:2411.02853; github.com/iShohei220/adopt",
            **common,
        ),
        OptimizerPlugin(
            name="lamb",
            summary="LAMB: Adam's step rescaled per layer by the trust ratio ||w|| / ||step||.",
            space=[
                _lr(1e-5, 1e-1, 1e-3, "pytorch_optimizer: 1e-3; paper: scaled with the batch"),
                _beta("beta1", 0.5, 0.99, 0.9, "paper: 0.9"),
                _beta("beta2", 0.9, 0.9999, 0.999, "paper: 0.999"),
                Float("eps", 1e-8, 1e-4, default=1e-6, log=True, recommended=1e-6,
                      help="paper: 1e-6"),
                _decay(0.1, 0.01, "decoupled; paper: 0.01"),
            ],
            build=Build("lamb"),
            state_multiple=2,  # exp_avg, exp_avg_sq
            reference="You et al. 2020, Large Batch Optimization for Deep Learning: Training "
            "BERT in 76 minutes (ICLR), arXiv:1904.00962",
            **common,
        ),
    ]


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register the optimizers built over pytorch_optimizer (listed as not installed where it
    is missing)."""
    for plugin in _plugins():
        register(plugin)
