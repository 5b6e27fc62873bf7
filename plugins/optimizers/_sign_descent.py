"""The shared multi-tensor step of the sign-descent optimizers (Lion, Tiger, signSGD, Signum).

All four move each parameter by ``lr`` times the sign of a blend of momentum and gradient, with
decoupled weight decay::

    p <- p * (1 - lr * weight_decay) - lr * sign(u)

where ``u`` is the gradient (signSGD), the freshly updated momentum (Signum, Tiger) or a blend
``beta1 * m + (1 - beta1) * g`` taken before the momentum is updated (Lion).

Speed: the step is written with ``torch._foreach_*`` ops. On CPU each foreach op is a loop of
ordinary kernels, so a step of five ops would stream the parameters, gradients and momenta from
memory five times. The tensors are therefore cut into blocks of about :data:`CPU_BLOCK_ELEMENTS`
elements, and all ops of the step run on one block while it is in cache before the next block is
touched: each tensor crosses the memory bus about once per step, as in SGD with momentum. On
accelerators the foreach ops already run as a few fused kernels, so the tensors go in whole.

The sign is written into a scratch buffer of one block that is reused across blocks and steps; it
is not optimizer state (it holds nothing between steps) and is not kept in ``optimizer.state``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

CPU_BLOCK_ELEMENTS = 1 << 17
"""Elements of each tensor list processed together on CPU (512 KiB of float32 per list)."""


def _split_into_blocks(
    tensor_lists: list[list[torch.Tensor]], block_elements: int
) -> Iterator[tuple[list[list[torch.Tensor]], list[int]]]:
    """Yield aligned blocks of flat chunks of the given tensor lists and the chunk sizes.

    All lists hold tensors of matching shapes (parameters, gradients, momenta). A tensor that is
    not contiguous in every list is passed whole as a block of its own, unflattened.
    """
    count = len(tensor_lists)
    pending: list[list[torch.Tensor]] = [[] for _ in range(count)]
    sizes: list[int] = []
    filled = 0
    for index in range(len(tensor_lists[0])):
        tensors = [tensor_list[index] for tensor_list in tensor_lists]
        if not all(tensor.is_contiguous() for tensor in tensors):
            yield [[tensor] for tensor in tensors], [-1]
            continue
        numel = tensors[0].numel()
        flats = [tensor.view(-1) for tensor in tensors]
        start = 0
        while start < numel:
            take = min(block_elements - filled, numel - start)
            for chunks, flat in zip(pending, flats, strict=True):
                chunks.append(flat[start:start + take] if take != numel else flat)
            sizes.append(take)
            filled += take
            start += take
            if filled == block_elements:
                yield pending, sizes
                pending, sizes, filled = [[] for _ in range(count)], [], 0
    if sizes:
        yield pending, sizes


class ScratchBuffers:
    """One reusable flat CPU buffer per dtype, sized to a block; holds nothing between steps."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def views(self, like: list[torch.Tensor], sizes: list[int]) -> list[torch.Tensor]:
        """Scratch tensors shaped as the chunks ``like`` (fresh ones for a non-flat block)."""
        if sizes == [-1]:
            return [torch.empty_like(tensor) for tensor in like]
        key = (like[0].device, like[0].dtype)
        total = sum(sizes)
        if key[0].type != "cpu":  # whole tensors: a temporary from the caching allocator
            return list(torch.empty(total, device=key[0], dtype=key[1]).split(sizes))
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < total:
            buffer = self._buffers[key] = torch.empty(total, device=key[0], dtype=key[1])
        return list(buffer[:total].split(sizes))


def group_by_device_and_dtype(
    tensor_lists: list[list[torch.Tensor]],
) -> list[list[list[torch.Tensor]]]:
    """Split aligned tensor lists so that each part has one device and one dtype."""
    parts: dict[tuple[torch.device, torch.dtype], list[list[torch.Tensor]]] = {}
    for index, tensor in enumerate(tensor_lists[0]):
        part = parts.setdefault((tensor.device, tensor.dtype), [[] for _ in tensor_lists])
        for target, source in zip(part, tensor_lists, strict=True):
            target.append(source[index])
    return list(parts.values())


@torch.no_grad()
def sign_descent_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momenta: list[torch.Tensor] | None,
    *,
    lr: float,
    weight_decay: float,
    update_beta: float,
    momentum_beta: float,
    momentum_first: bool,
    scratch: ScratchBuffers,
) -> None:
    """One sign-descent step over aligned lists of parameters, gradients and momenta.

    Args:
        params: the parameters, updated in place.
        grads: their gradients.
        momenta: their momentum buffers, updated in place (``None`` for signSGD).
        lr: the learning rate (the size of every coordinate's move).
        weight_decay: decoupled weight decay: parameters are first scaled by ``1 - lr * wd``.
        update_beta: Lion's beta1: ``u = update_beta * m + (1 - update_beta) * g``.
        momentum_beta: the momentum's decay: ``m <- momentum_beta * m + (1 - momentum_beta) * g``.
        momentum_first: update the momentum first and take ``u = m`` (Signum, Tiger).
        scratch: the reusable scratch buffers of the optimizer.
    """
    if not params:
        return
    lists = [params, grads] + ([momenta] if momenta is not None else [])
    for part in group_by_device_and_dtype(lists):
        block = CPU_BLOCK_ELEMENTS if part[0][0].device.type == "cpu" else 1 << 62
        for (p, g, *m), sizes in _split_into_blocks(part, block):
            signs = scratch.views(p, sizes)
            if not m:
                torch._foreach_copy_(signs, g)
            elif momentum_first:
                torch._foreach_lerp_(m[0], g, 1.0 - momentum_beta)
                torch._foreach_copy_(signs, m[0])
            else:
                torch._foreach_copy_(signs, m[0])
                torch._foreach_lerp_(signs, g, 1.0 - update_beta)
            torch._foreach_sign_(signs)
            if weight_decay != 0.0:
                torch._foreach_mul_(p, 1.0 - lr * weight_decay)
            torch._foreach_add_(p, signs, alpha=-lr)
            if m and not momentum_first:
                torch._foreach_lerp_(m[0], g, 1.0 - momentum_beta)
