"""Train a small CNN on scikit-learn's 8×8 digits: orch's example data-parallel job.

Runs alone, under ``horovodrun`` or under ``torchrun``::

    python jobs/train_digits.py --epochs 5
    horovodrun -np 2 -H localhost:2 --gloo python jobs/train_digits.py
    torchrun --standalone --nproc_per_node 2 jobs/train_digits.py

Data: scikit-learn's bundled digits (no download), or ``--data PATH`` naming an ``.npz``
with arrays ``x`` (N×H×W or N×H·W with H = W) and ``y`` (integer labels), or a directory
of such files. Paths are local: on Azure the backend first downloads a blob URL given in
the job spec into the task directory and passes that path. The split (70/15/15
train/val/test) is fixed by ``--seed``.

``--dist auto`` picks Horovod when Horovod or Open MPI rank variables are set,
torch.distributed when torchrun's ``RANK``/``WORLD_SIZE`` are, else one process. In both
distributed modes the learning rate is scaled by the world size, every rank trains on its
own shard, and weights start identical. Rank 0 reports per-epoch metrics with
``orchestrator.report`` and writes a checkpoint after each epoch to ``--checkpoint``
(default ``$ORCH_CHECKPOINT_DIR/checkpoint.pt``, which orch restores before every attempt on
whatever node it runs; without it ``$ORCH_TASK_DIR/checkpoint.pt``) by writing a temporary file and renaming it;
a restarted run resumes after the last finished epoch (the checkpoint keeps the random
state, so a resumed run ends with the same weights as an uninterrupted one). At the end every rank prints
``weights-checksum: <sha256>`` and rank 0 prints ``test_accuracy: <x>``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn

from orchestrator import report

HOROVOD_RANK_VARS = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


@dataclass
class Splits:
    """Train, validation and test tensors: images N×1×H×W in [0, 1], integer labels."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    num_classes: int


@dataclass
class Dist:
    """This process's place in the job and the collectives it needs."""

    mode: str
    rank: int
    size: int
    local_rank: int
    local_size: int
    broadcast_object: Callable[[Any], Any]
    average: Callable[[float], float]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.05, help="per-process learning rate")
    parser.add_argument("--batch-size", type=int, default=32, help="per-process batch size")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=pathlib.Path, default=None,
                        help=".npz file (x, y) or directory of them; default: sklearn digits")
    parser.add_argument("--dist", choices=("auto", "none", "horovod", "torch"), default="auto")
    home = os.environ.get("ORCH_CHECKPOINT_DIR") or os.environ.get("ORCH_TASK_DIR")  # the first follows the task
    default_ckpt = pathlib.Path(home) / "checkpoint.pt" if home else None
    parser.add_argument("--checkpoint", type=_optional_path, default=default_ckpt,
                        help="checkpoint file (default: $ORCH_CHECKPOINT_DIR/checkpoint.pt, restored on any node "
                             "a retried or requeued attempt lands on; else $ORCH_TASK_DIR/checkpoint.pt; '' for none)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0 or not 0 <= args.dropout < 1:
        parser.error("need --epochs >= 1, --batch-size >= 1, --lr > 0 and 0 <= --dropout < 1")
    return args


def _optional_path(text: str) -> pathlib.Path | None:
    return pathlib.Path(text) if text else None


def detect_mode(requested: str) -> str:
    """Resolve ``--dist auto`` from the launcher's environment variables."""
    if requested != "auto":
        return requested
    if any(name in os.environ for name in HOROVOD_RANK_VARS):
        return "horovod"
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return "torch"
    return "none"


def load_arrays(data: pathlib.Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×H×W float32 in [0, 1]) and labels from sklearn or ``--data``."""
    if data is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y = digits.images.astype(np.float32), digits.target
    else:
        files = sorted(data.glob("*.npz")) if data.is_dir() else [data]
        if not files:
            raise SystemExit(f"train_digits: no .npz files in {data}")
        parts = [np.load(path) for path in files]
        x = np.concatenate([_as_images(part["x"]) for part in parts])
        y = np.concatenate([part["y"] for part in parts])
    peak = float(x.max()) if x.size else 1.0
    return x / (peak if peak > 0 else 1.0), y.astype(np.int64)


def _as_images(x: np.ndarray) -> np.ndarray:
    """N×H×W float32; flat rows of a square image (N×H·W) are reshaped."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        side = int(round(x.shape[1] ** 0.5))
        if side * side != x.shape[1]:
            raise SystemExit(f"train_digits: rows of {x.shape[1]} values are not square images")
        x = x.reshape(len(x), side, side)
    if x.ndim != 3:
        raise SystemExit(f"train_digits: x must be N×H×W or N×H·W, got shape {x.shape}")
    return x


def split(x: np.ndarray, y: np.ndarray, seed: int) -> Splits:
    """A seeded 70/15/15 split."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_train, n_val = int(0.7 * len(x)), int(0.15 * len(x))
    pieces = np.split(order, [n_train, n_train + n_val])
    tensors = [(torch.from_numpy(x[idx]).unsqueeze(1), torch.from_numpy(y[idx])) for idx in pieces]
    return Splits(tensors[0], tensors[1], tensors[2], int(y.max()) + 1)


class DigitsNet(nn.Module):
    """Two 3×3 convolutions, pooling to 4×4, dropout and two linear layers."""

    def __init__(self, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(32 * 16, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.conv2(F.relu(self.conv1(images))))
        hidden = self.dropout(torch.flatten(self.pool(hidden), 1))
        return self.fc2(F.relu(self.fc1(hidden)))


def init_dist(mode: str) -> Dist:
    """Initialise Horovod or torch.distributed (or nothing) and describe this rank."""
    if mode == "horovod":
        import horovod.torch as hvd

        hvd.init()
        return Dist(mode, hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size(),
                    lambda obj: hvd.broadcast_object(obj, root_rank=0),
                    lambda value: float(hvd.allreduce(torch.tensor(value), op=hvd.Average)))
    if mode == "torch":
        dist = torch_dist
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)

        def broadcast(obj: Any) -> Any:
            box = [obj]
            dist.broadcast_object_list(box, src=0)
            return box[0]

        def average(value: float) -> float:
            tensor = torch.tensor([value], device=_device(local_rank))
            dist.all_reduce(tensor)
            return float(tensor.item()) / dist.get_world_size()

        return Dist(mode, dist.get_rank(), dist.get_world_size(), local_rank,
                    int(os.environ.get("LOCAL_WORLD_SIZE", "1")), broadcast, average)
    return Dist("none", 0, 1, 0, 1, lambda obj: obj, lambda value: value)


def _device(local_rank: int) -> torch.device:
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def shard_batches(count: int, dist: Dist, epoch: int, seed: int, batch_size: int) -> list[torch.Tensor]:
    """This rank's batches of a seeded per-epoch shuffle; every rank gets as many."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(count, generator=generator)
    padded = -(-count // dist.size) * dist.size
    order = torch.cat([order, order[: padded - count]])
    return list(order[dist.rank::dist.size].split(batch_size))


def load_checkpoint(path: pathlib.Path | None, dist: Dist) -> dict[str, Any] | None:
    """Rank 0 reads the checkpoint if there is one; every rank gets the same copy."""
    state = None
    if dist.rank == 0 and path is not None and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
    return dist.broadcast_object(state)


def save_checkpoint(path: pathlib.Path | None, dist: Dist, state: dict[str, Any]) -> None:
    """Rank 0 writes ``state`` atomically (temporary file, then rename)."""
    if dist.rank != 0 or path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def accuracy(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> float:
    """Fraction of ``data`` the model labels correctly (eval mode, no gradients)."""
    model.eval()
    with torch.no_grad():
        predictions = model(data[0].to(device)).argmax(dim=1).cpu()
    model.train()
    return float((predictions == data[1]).float().mean())


def weights_checksum(model: nn.Module) -> str:
    """sha256 over every parameter's bytes, in definition order."""
    digest = hashlib.sha256()
    for parameter in model.parameters():
        digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_training(args: argparse.Namespace, dist: Dist, splits: Splits,
                   device: torch.device) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, int]:
    """Model, the module to train (wrapped for DDP), optimizer, and the first epoch to run."""
    torch.manual_seed(args.seed)
    model = DigitsNet(splits.num_classes, args.dropout).to(device)
    lr = args.lr * dist.size
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    checkpoint = load_checkpoint(args.checkpoint, dist)
    start_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.set_rng_state(checkpoint["rng"])
        start_epoch = int(checkpoint["epoch"])
        if dist.rank == 0:
            print(f"resuming from epoch {start_epoch}", flush=True)
    trained: nn.Module = model
    if dist.mode == "horovod":
        import horovod.torch as hvd

        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    elif dist.mode == "torch":
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[dist.local_rank] if device.type == "cuda" else None)
    return model, trained, optimizer, start_epoch


def epoch_batches(args: argparse.Namespace, dist: Dist, count: int, epoch: int) -> list[torch.Tensor]:
    """Index batches for one epoch: DistributedSampler under torchrun, own shards otherwise."""
    if dist.mode != "torch":
        return shard_batches(count, dist, epoch, args.seed, args.batch_size)
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(range(count), num_replicas=dist.size, rank=dist.rank,
                                 shuffle=True, seed=args.seed)
    sampler.set_epoch(epoch)
    return list(torch.tensor(list(sampler)).split(args.batch_size))


def train(args: argparse.Namespace, dist: Dist, splits: Splits, device: torch.device) -> nn.Module:
    """Run the remaining epochs, reporting and checkpointing after each; returns the model."""
    model, trained, optimizer, start_epoch = build_training(args, dist, splits, device)
    images, labels = splits.train
    for epoch in range(start_epoch, args.epochs):
        started, loss_sum, seen = time.perf_counter(), 0.0, 0
        for batch in epoch_batches(args, dist, len(images), epoch):
            optimizer.zero_grad()
            loss = F.cross_entropy(trained(images[batch].to(device)), labels[batch].to(device))
            loss.backward()
            optimizer.step()
            loss_sum, seen = loss_sum + loss.item() * len(batch), seen + len(batch)
        elapsed = time.perf_counter() - started
        mean_loss = dist.average(loss_sum / max(seen, 1))
        val_accuracy = accuracy(model, splits.val, device)
        if dist.rank == 0:
            report(step=epoch + 1, loss=round(mean_loss, 6), val_accuracy=round(val_accuracy, 6),
                   samples_per_sec=round(seen * dist.size / max(elapsed, 1e-9), 1))
            print(f"epoch {epoch + 1}/{args.epochs} loss {mean_loss:.4f} "
                  f"val_accuracy {val_accuracy:.4f}", flush=True)
        save_checkpoint(args.checkpoint, dist, {
            "epoch": epoch + 1, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "seed": args.seed})
    return model


def main(argv: list[str] | None = None) -> int:
    """Train, then print the checksum (every rank) and test accuracy (rank 0)."""
    args = parse_args(argv)
    dist = init_dist(detect_mode(args.dist))
    # OMP_NUM_THREADS (set by the job spec or the launcher) wins; else share the cores between local ranks.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // dist.local_size)))
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = _device(dist.local_rank)
    splits = split(*load_arrays(args.data), seed=args.seed)
    model = train(args, dist, splits, device)
    print(f"weights-checksum: {weights_checksum(model)}", flush=True)
    if dist.rank == 0:
        print(f"test_accuracy: {accuracy(model, splits.test, device):.4f}", flush=True)
    if dist.mode == "torch":
        torch_dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
