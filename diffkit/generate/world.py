"""The processes of one job: torch.distributed set up from torchrun's environment, or one plain process.

Under ``torchrun`` (one node or several) every process finds RANK, WORLD_SIZE, LOCAL_RANK and
LOCAL_WORLD_SIZE (and the rendezvous address) in its environment; :meth:`World.connect` then
joins the process group, over NCCL when the job runs on CUDA (each process on GPU LOCAL_RANK)
and over gloo on the CPU. Without those variables the job is one process and nothing is
initialised: every collective below is then the identity.

Threads: :func:`torch_threads` gives each process its share of the cores (OMP_NUM_THREADS wins
when set; torchrun sets it to 1 for several processes a node unless the user did).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def torch_threads(local_size: int) -> int:
    """Threads for each of ``local_size`` processes on this node: OMP_NUM_THREADS if set, else cores // processes."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, usable_cores() // local_size)


class World:
    """Rank, size and the collectives of one job (the identity for a single plain process)."""

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0, local_size: int = 1, launched: bool = False):
        self.rank, self.size, self.local_rank, self.local_size = rank, size, local_rank, local_size
        self.launched = launched  # started by torchrun: connect() joins a process group
        self.comm_device = torch.device("cpu")  # where collectives' tensors live (the GPU under NCCL)

    @classmethod
    def from_env(cls) -> "World":
        """The world torchrun describes in the environment, else one process; ValueError if the variables disagree."""
        present = [name for name in _ENV if name in os.environ]
        if not present:
            return cls()
        if len(present) != len(_ENV):
            missing = sorted(set(_ENV) - set(present))
            raise ValueError(f"found {', '.join(present)} but not {', '.join(missing)} in the environment; "
                             f"launch with torchrun, or unset them to run as one process")  # fmt: skip
        try:
            rank, size, local_rank, local_size = (int(os.environ[name]) for name in _ENV)
        except ValueError as err:
            raise ValueError(f"torchrun's environment variables {', '.join(_ENV)} must be integers ({err})") from None
        if not (0 <= rank < size and 0 <= local_rank < local_size <= size):
            raise ValueError(f"inconsistent torchrun environment: RANK {rank}, WORLD_SIZE {size}, "
                             f"LOCAL_RANK {local_rank}, LOCAL_WORLD_SIZE {local_size}")  # fmt: skip
        return cls(rank, size, local_rank, local_size, launched=True)

    @property
    def main(self) -> bool:
        """Rank 0: the process that prepares the output directory, draws the progress bar and writes the summaries."""
        return self.rank == 0

    def device(self, kind: str) -> torch.device:
        """This process's device for ``kind`` ("cpu" or "cuda": GPU LOCAL_RANK); ValueError if there is none."""
        if kind == "cpu":
            return torch.device("cpu")
        if kind != "cuda":
            raise ValueError(f"unknown --device {kind!r}; allowed: cpu, cuda")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if self.local_rank >= count:
            raise ValueError(f"--device cuda: process {self.local_rank} of this node needs GPU {self.local_rank}, "
                             f"but {count} GPU(s) are visible")  # fmt: skip
        return torch.device("cuda", self.local_rank)

    def connect(self, device: torch.device) -> None:
        """Join the process group (NCCL for CUDA devices, gloo otherwise) when launched by torchrun."""
        if not self.launched or dist.is_initialized():
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
            self.comm_device = device
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")

    @property
    def backend(self) -> str | None:
        return dist.get_backend() if dist.is_initialized() else None

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum over all processes of ``values`` (a CPU tensor; float64 or int64 keeps the sum exact enough)."""
        if not dist.is_initialized():
            return values.clone()
        buffer = values.to(self.comm_device)
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        return buffer.cpu()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (a picklable value)."""
        if not dist.is_initialized():
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.comm_device)
        return box[0]

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
