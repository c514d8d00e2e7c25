"""CNN training: log-mel clips rendered in worker processes, random 4 s crops, BCE on the window
logit (the mean of frame logits, exactly what inference computes)."""

from __future__ import annotations

import copy
import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..engines.cnn import CnnNet, LogMel, MelConfig, NetConfig
from ..evaluation.metrics import log_loss, roc_auc
from .examples import Item, render

MEL = MelConfig()


@dataclass
class MelSet:
    mels: np.ndarray        # (n, n_mels, frames) float16
    labels: np.ndarray      # (n,) int
    families: list[str]
    codecs: list[str]


def _init_worker() -> None:
    torch.set_num_threads(1)   # one process per core renders; threads would only contend


_MELSPEC: LogMel | None = None


def _render_mel(item: Item) -> np.ndarray | None:
    global _MELSPEC
    if _MELSPEC is None:
        _MELSPEC = LogMel(MEL)
    x = render(item)
    if x is None:
        return None
    with torch.inference_mode():
        mel = _MELSPEC(torch.from_numpy(x.mean(axis=0))[None])[0, 0]
    return mel.numpy().astype(np.float16)


def build_melset(items: list[Item], workers: int, log: Callable[[str], None], what: str) -> MelSet:
    started = time.perf_counter()
    mels, labels, families, codecs = [], [], [], []
    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        for i, (item, mel) in enumerate(zip(items, pool.imap(_render_mel, items, chunksize=4))):
            if mel is not None:
                mels.append(mel)
                labels.append(item.label)
                families.append(item.family)
                codecs.append(item.codec.label())
            if (i + 1) % 500 == 0:
                log(f"  {what}: {i + 1}/{len(items)} clips rendered ({time.perf_counter() - started:.0f} s)")
    frames = min(m.shape[1] for m in mels)
    return MelSet(np.stack([m[:, :frames] for m in mels]), np.array(labels), families, codecs)


def crop_frames(cfg: NetConfig, window_s: float) -> int:
    """Training crops span whole output steps of the net, as windows do at inference."""
    seconds_per_logit = cfg.time_stride * MEL.hop / MEL.sample_rate
    return max(1, round(window_s / seconds_per_logit)) * cfg.time_stride


def _batch(ms: MelSet, idx: np.ndarray, crop: int, rng: np.random.Generator, augment: bool):
    n_frames = ms.mels.shape[2]
    out = np.empty((len(idx), 1, ms.mels.shape[1], crop), np.float32)
    for j, i in enumerate(idx):
        start = int(rng.integers(0, n_frames - crop + 1)) if augment else (n_frames - crop) // 2
        out[j, 0] = ms.mels[i, :, start:start + crop]
    x = torch.from_numpy(out)
    if augment:   # +-6 dB of gain is a constant offset on the dB scale (floor kept at -100 dB)
        x = (x + torch.empty(len(idx), 1, 1, 1).uniform_(-6 / 25, 6 / 25)).clamp_min(-2.0)
    return x, torch.from_numpy(ms.labels[idx].astype(np.float32))


def evaluate(net: CnnNet, ms: MelSet, crop: int) -> tuple[float, float, np.ndarray]:
    net.eval()
    rng = np.random.default_rng(0)
    logits = []
    with torch.inference_mode():
        for s in range(0, len(ms.labels), 256):
            x, _ = _batch(ms, np.arange(s, min(s + 256, len(ms.labels))), crop, rng, augment=False)
            logits.append(net.window_logit(x).numpy())
    z = np.concatenate(logits)
    return log_loss(ms.labels.astype(np.float64), z), roc_auc(ms.labels, z), z


def train_cnn(train: MelSet, val: MelSet, cfg: NetConfig, window_s: float, epochs: int,
              batch_size: int, lr: float, seed: int, log: Callable[[str], None]) -> tuple[CnnNet, list[dict]]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = CnnNet(cfg)
    crop = crop_frames(cfg, window_s)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * max(1, len(train.labels) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.BCEWithLogitsLoss()
    best, best_auc, history = None, -1.0, []
    for epoch in range(epochs):
        net.train()
        started = time.perf_counter()
        order = rng.permutation(len(train.labels))
        total = 0.0
        for b in range(len(order) // batch_size):
            x, y = _batch(train, order[b * batch_size:(b + 1) * batch_size], crop, rng, augment=True)
            loss = loss_fn(net.window_logit(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        val_loss, val_auc, _ = evaluate(net, val, crop)
        row = {"epoch": epoch + 1, "train_loss": total / max(1, len(order) // batch_size),
               "val_loss": val_loss, "val_auc": val_auc, "seconds": time.perf_counter() - started}
        history.append(row)
        log(f"  epoch {epoch + 1}/{epochs}: train loss {row['train_loss']:.4f}, "
            f"val loss {val_loss:.4f}, val AUC {val_auc:.4f} ({row['seconds']:.0f} s)")
        # Keep the best ranking, not the best loss: Platt scaling on the calibration split fixes
        # the scale afterwards, and validation loss rises with confidence long before AUC falls.
        if val_auc > best_auc:
            best_auc, best = val_auc, copy.deepcopy(net.state_dict())
    net.load_state_dict(best)
    return net.eval(), history
