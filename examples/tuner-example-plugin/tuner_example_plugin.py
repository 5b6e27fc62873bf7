"""An example tuner plugin: normalized SGD, which steps a fixed length along the gradient."""

import torch

from tuner import Float, OptimizerPlugin, hookimpl


class NormalizedSGD(torch.optim.Optimizer):
    """p <- p - lr * g / ||g||, with the norm taken over all parameters together."""

    def __init__(self, params, lr=0.1, eps=1e-12):
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            grads = [p.grad for p in group["params"] if p.grad is not None]
            if not grads:
                continue
            norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
            scale = -group["lr"] / (norm + group["eps"])
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=float(scale))
        return loss


@hookimpl
def register_optimizers(register):
    register(
        OptimizerPlugin(
            name="nsgd",
            summary="Normalized SGD: a fixed-length step along the gradient.",
            space=[Float("lr", 1e-4, 1.0, default=0.1, log=True)],
            build=lambda params, hp: NormalizedSGD(params, lr=hp["lr"]),
            state_multiple=0,
        )
    )
