"""Pick the compute device at run time: CUDA when present, else CPU. Nothing in promoloop requires a GPU."""

from __future__ import annotations

import os

import torch


def pick_device(preferred: str | None = None) -> torch.device:
    """`preferred` (or $PROMO_DEVICE) may force "cpu" or "cuda"; otherwise CUDA if available."""
    choice = preferred or os.environ.get("PROMO_DEVICE")
    if choice:
        if choice.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {choice!r} was asked for but CUDA is not available")
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA (Ampere or newer); full precision on CPU, where bf16 is slower."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None
