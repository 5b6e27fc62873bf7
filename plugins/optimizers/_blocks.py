"""Cache-sized blocks for multi-tensor optimizer steps on CPU.

On CPU each ``torch._foreach_*`` op is a loop of ordinary kernels, so a step of several ops over
whole tensors streams the parameters and their state from memory once per op. Cutting the tensors
into blocks of about :data:`CPU_BLOCK_ELEMENTS` elements and running all ops of a step on one
block while it is in cache makes each tensor cross the memory bus about once per step. On
accelerators the foreach ops already run as a few fused kernels, so tensors go in whole.

Temporaries (the sign of the update, Adam's denominator) are made by out-of-place foreach ops on
one block at a time: a block-sized allocation that the allocator recycles from block to block,
never a parameter-sized buffer, and nothing is kept between steps.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

CPU_BLOCK_ELEMENTS = 1 << 18
"""Elements of each tensor list processed together on CPU (1 MiB of float32 per list)."""


def block_elements(device: torch.device) -> int:
    """Elements per block on ``device`` (the whole tensor lists off the CPU)."""
    return CPU_BLOCK_ELEMENTS if device.type == "cpu" else 1 << 62


def split_into_blocks(
    tensor_lists: list[list[torch.Tensor]], block_elements: int
) -> Iterator[list[list[torch.Tensor]]]:
    """Yield aligned blocks of flat chunks of the given tensor lists.

    All lists hold tensors of matching shapes (parameters, gradients, momenta). A tensor that is
    not contiguous in every list is passed whole as a block of its own, unflattened.
    """
    count = len(tensor_lists)
    pending: list[list[torch.Tensor]] = [[] for _ in range(count)]
    filled = 0
    for index in range(len(tensor_lists[0])):
        tensors = [tensor_list[index] for tensor_list in tensor_lists]
        if not all(tensor.is_contiguous() for tensor in tensors):
            yield [[tensor] for tensor in tensors]
            continue
        numel = tensors[0].numel()
        flats = [tensor.view(-1) for tensor in tensors]
        start = 0
        while start < numel:
            take = min(block_elements - filled, numel - start)
            for chunks, flat in zip(pending, flats, strict=True):
                chunks.append(flat[start:start + take] if take != numel else flat)
            filled += take
            start += take
            if filled == block_elements:
                yield pending
                pending, filled = [[] for _ in range(count)], 0
    if filled:
        yield pending


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
