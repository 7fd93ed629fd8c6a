"""The output directory of a generation job: its configuration, the seeds already written, the final arrays.

    DIR/config.json      what determines the samples (model hash, sampler, timesteps, batch, ...): a re-run
                         resumes only under the same configuration; its seeds may differ (a run over
                         0-99999 keeps the files of one over 0-49999)
    DIR/{seed:06d}.png   one file per seed (:mod:`diffkit.generate.samplefile`), or DIR/000000/... with subdirs
    DIR/samples.npz      seeds (int64), images (float32 [N, C, H, W] in [-1, 1]), labels (int64; -1 when
                         unconditional), in seed order: written at the end
    DIR/run.json         command, versions, machine, world size, timings of the last run (and the earlier ones)

Every file is written atomically (a temporary ``.name.*.tmp`` renamed into place). Sample files skip the
fsync (~8 ms a file here; a kill of the process cannot tear them, a crash of the machine could): the
assembly reads every one back, checks its CRCs, and deletes a damaged one so that the next run redraws it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffkit.generate.samplefile import SUBDIR_SEEDS, read_sample, sample_path, seed_of
from diffkit.io.tensorfile import atomic_file, write_atomic

CONFIG = "config.json"
SAMPLES = "samples.npz"
RUN = "run.json"


def check_config(outdir: Path, config: dict) -> bool:
    """Write ``config`` into a new ``outdir``, or check it against the one there; True when resuming.

    ValueError (one line) when ``outdir`` cannot be created or written, when it holds another
    configuration, or when it holds sample files without a configuration.
    """
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        path = outdir / CONFIG
        if path.is_file():
            stored = json.loads(path.read_text())
            changed = sorted(key for key in set(stored) | set(config) if stored.get(key) != config.get(key))
            if changed:
                was = ", ".join(f"{key}={_short(stored.get(key))}" for key in changed)
                now = ", ".join(f"{key}={_short(config.get(key))}" for key in changed)
                raise ValueError(f"{outdir} holds samples made with {was}; this command asks for {now}: "
                                 f"pass the same options to resume, or another --outdir")  # fmt: skip
            return True
        if written_seeds(outdir, subdirs=False) or written_seeds(outdir, subdirs=True):
            raise ValueError(f"{outdir} holds sample files but no {CONFIG}: it was not written by diffkit generate "
                             f"(or its {CONFIG} was deleted); use another --outdir")  # fmt: skip
        write_atomic(path, (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())
        return False
    except json.JSONDecodeError as err:
        raise ValueError(f"{outdir / CONFIG} is not valid JSON ({err}); delete it or use another --outdir") from None
    except OSError as err:
        raise ValueError(f"cannot write to --outdir {outdir}: {err.strerror or err}") from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(value)} values)]" if isinstance(value, list) else text


def clean_temporaries(outdir: Path) -> int:
    """Remove the temporary files a killed run left behind (``.*.tmp``, here and one folder down); their count."""
    removed = 0
    for folder in [outdir, *(p for p in outdir.iterdir() if p.is_dir())]:
        for path in folder.glob(".*.tmp"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def written_seeds(outdir: Path, subdirs: bool) -> set[int]:
    """The seeds whose (non-empty) sample file exists under ``outdir``."""
    folders = [p for p in outdir.iterdir() if p.is_dir() and p.name.isdigit()] if subdirs else [outdir]
    seeds = set()
    for folder in folders:
        with os.scandir(folder) as entries:
            for entry in entries:
                seed = seed_of(entry.name)
                if seed is not None and (not subdirs or seed // SUBDIR_SEEDS * SUBDIR_SEEDS == int(folder.name)) \
                        and entry.is_file() and entry.stat().st_size > 0:
                    seeds.add(seed)
    return seeds


def read_samples(outdir: Path, seeds: Sequence[int], subdirs: bool) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [N, C, H, W], labels int64 [N]) of ``seeds``, read from their files.

    A damaged file (a crash of the machine can leave one: see the module docstring) is deleted and
    reported in a ValueError: running the same command again redraws it.
    """
    images, labels = None, np.empty(len(seeds), dtype=np.int64)
    damaged = []
    for i, seed in enumerate(seeds):
        path = sample_path(outdir, seed, subdirs)
        try:
            found, label, image = read_sample(path)
            if found != seed:
                raise ValueError(f"{path} holds seed {found}")
        except FileNotFoundError:
            damaged.append(f"{path} is missing")
            continue
        except ValueError as err:
            damaged.append(str(err))
            path.unlink(missing_ok=True)
            continue
        if images is None:
            images = np.empty((len(seeds), *image.shape), dtype=np.float32)
        images[i], labels[i] = image, label
    if damaged:
        raise ValueError(f"{len(damaged)} sample file(s) were missing or damaged (deleted; first: {damaged[0]}); "
                         f"run the same command again to redraw them")  # fmt: skip
    return images, labels


def write_samples(outdir: Path, seeds: Sequence[int], subdirs: bool) -> Path:
    """``samples.npz`` of ``seeds`` in increasing order, assembled from the sample files (atomically)."""
    ordered = np.array(sorted(seeds), dtype=np.int64)
    images, labels = read_samples(outdir, ordered.tolist(), subdirs)
    with atomic_file(outdir / SAMPLES) as f:
        np.savez(f, seeds=ordered, images=images, labels=labels)
    return outdir / SAMPLES
