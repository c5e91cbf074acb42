"""Batches for training and inference: an encoded frame packed into one buffer per dtype, gathered whole.

Why: an `EncodedFrame` holds a dozen tensors (numeric block, categorical codes, the sequence's four code
matrices and mask, targets, labels). Gathering a batch key by key costs a dozen index copies and gather
kernels per step, plus a host-to-device copy of the index for each; on a GPU that bookkeeping took longer
than the small model's step. Packed, a batch is two gathers with one index that already lives on the
device (the epoch's order is moved there once), and the keys are views into the gathered rows.

Placement: when the packed buffers fit in the device's free memory (with headroom for the model) they are
moved there once (`resident`); otherwise they stay on the host in pinned memory, rows are gathered there
and copied with `non_blocking=True`. On CPU the buffers simply stay where they are. The values a batch
holds are exactly those of `EncodedFrame.take`, so training on CPU gives bit-identical weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Sampler

from ml.predictor.features import EncodedFrame

# Buffer kind per tensor dtype: floats go to one float32 buffer, codes and masks to one int64 buffer.
_KINDS = {torch.float32: "float", torch.int64: "int", torch.bool: "int"}
DEVICE_MEMORY_SHARE = 0.5  # the packed frame may take at most this share of the device's free memory


@dataclass(frozen=True)
class Field:
    """Where one tensor of the frame lives in its buffer: columns [start, stop), original shape and dtype."""

    name: str
    kind: str
    start: int
    stop: int
    tail: tuple[int, ...]  # shape after the row dimension: () for (N,), (F,) for (N, F)
    dtype: torch.dtype


def fits_on_device(nbytes: int, device: torch.device, share: float = DEVICE_MEMORY_SHARE) -> bool:
    """True when `nbytes` can live on `device` next to the model: always on CPU, else a share of free memory."""
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes <= share * free


class PackedFrame:
    """An `EncodedFrame` as one float32 and one int64 matrix (rows = examples), for whole-batch gathers."""

    def __init__(self, data: EncodedFrame, device: torch.device | str, *, resident: bool | None = None):
        self.device = torch.device(device)
        self.fields: list[Field] = []
        blocks: dict[str, list[torch.Tensor]] = {"float": [], "int": []}
        widths = {"float": 0, "int": 0}
        for name, tensor in data.tensors.items():
            kind = _KINDS.get(tensor.dtype)
            if kind is None:
                raise TypeError(f"PackedFrame: tensor {name!r} has dtype {tensor.dtype}; expected float32, int64 or bool")
            flat = tensor.reshape(tensor.shape[0], -1)  # (N, W)
            self.fields.append(Field(name, kind, widths[kind], widths[kind] + flat.shape[1], tuple(tensor.shape[1:]), tensor.dtype))
            widths[kind] += flat.shape[1]
            blocks[kind].append(flat.to(torch.float32 if kind == "float" else torch.int64))
        n = len(data)
        self.n_rows = n
        host = {
            kind: torch.cat([b.cpu() for b in parts], dim=1) if parts else torch.zeros((n, 0), dtype=torch.float32 if kind == "float" else torch.int64)
            for kind, parts in blocks.items()
        }
        nbytes = sum(b.numel() * b.element_size() for b in host.values())
        self.resident = fits_on_device(nbytes, self.device) if resident is None else resident
        if self.resident:
            self.buffers = {k: b.to(self.device) for k, b in host.items()}
        else:
            self.buffers = {k: b.pin_memory() if self.device.type == "cuda" else b for k, b in host.items()}

    def __len__(self) -> int:
        return self.n_rows

    @property
    def index_device(self) -> torch.device:
        """Where batch indices should live: the device when resident, else the host (gathers run there)."""
        return self.device if self.resident else torch.device("cpu")

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers.values())

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rows `index` (1-D int64) of every tensor, on the device: one gather per buffer."""
        index = index.to(self.index_device, non_blocking=True)
        if self.resident:
            rows = {k: b.index_select(0, index) for k, b in self.buffers.items()}
        else:
            rows = {}
            for k, b in self.buffers.items():
                pinned = self.device.type == "cuda"
                staging = torch.empty((len(index), b.shape[1]), dtype=b.dtype, pin_memory=pinned)
                torch.index_select(b, 0, index, out=staging)
                rows[k] = staging.to(self.device, non_blocking=pinned)
        return self._unpack(rows)

    def rows(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        """The contiguous rows [start, stop): a view of the buffers when resident, no gather at all."""
        return self._unpack({k: b[start:stop].to(self.device, non_blocking=True) for k, b in self.buffers.items()})

    def _unpack(self, rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for f in self.fields:
            block = rows[f.kind][:, f.start : f.stop]
            if f.dtype == torch.bool:
                block = block != 0
            out[f.name] = block.reshape(block.shape[0], *f.tail) if f.tail else block[:, 0]
        return out


def epoch_order(sampler: Sampler[int], device: torch.device) -> torch.Tensor:
    """The sampler's order for its current epoch as one int64 tensor on `device`: one copy per epoch, so
    no step waits on a host-to-device copy of its index."""
    return torch.tensor(list(iter(sampler)), dtype=torch.int64).to(device)
