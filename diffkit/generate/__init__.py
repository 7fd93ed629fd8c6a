"""Generation at scale: one sample per seed, written as files, on one process or many (torchrun), resumable.

``diffkit generate --seeds 0-49999 --outdir DIR`` (see :mod:`diffkit.cli.generate`) is
:func:`generate` over a :class:`Job`:

    seeds       "0-49999" / "0,5,10-19" -> seeds; the fixed batches
    world       the processes: torch.distributed from torchrun's environment (NCCL on CUDA, gloo on CPU), or one
    job         what to draw (Job), drawing one batch with one generator per seed, sharing batches out
    samplefile  one seed's file: {seed:06d}.png with the exact float32 sample inside
    outdir      the output directory: config.json (resume check), scanning, samples.npz, run.json
    evaluate    --eval on digits models: FD and classifier accuracy from statistics summed with all_reduce
    run         generate(): the whole run on every process
"""

from diffkit.generate.job import CollectiveError, Job
from diffkit.generate.run import generate
from diffkit.generate.seeds import parse_seeds
from diffkit.generate.world import World

__all__ = ["CollectiveError", "Job", "World", "generate", "parse_seeds"]
