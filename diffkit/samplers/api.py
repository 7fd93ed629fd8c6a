"""``diffkit.sample``: one call from an eps-model and a schedule to samples."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from diffkit.progress import ProgressBar
from diffkit.samplers.defaults import default_for
from diffkit.samplers.model_calls import Callback, EpsModel
from diffkit.samplers.noise import GeneratorArg, randn
from diffkit.samplers.registry import get_sampler
from diffkit.samplers.timetable import TimestepsLike, check_timesteps
from diffkit.schedules.base import Schedule, check_positive_int, check_schedule
from diffkit.schedules.spacing import MAX_STEPS
from diffkit.schedules.spacing import default_spacing as usable_spacing
from diffkit.schedules.spacing import timesteps as make_timesteps

DEFAULT_STEPS = 20  # steps when neither steps nor an explicit grid is given


def _progress(total: int, inner: Callback | None) -> Callback:
    """A callback that calls ``inner`` and draws the progress bar, ending its line after the last step."""
    bar = ProgressBar(total, "steps")

    def callback(i: int, t: float, x: torch.Tensor, x0: torch.Tensor) -> None:
        if inner is not None:
            inner(i, t, x, x0)
        bar.update(i + 1)
        if i + 1 == total:
            bar.close()

    return callback


def _draw_x_T(shape: object, generator: GeneratorArg, device: object, dtype: object) -> torch.Tensor:
    """x_T ~ N(0, I) of ``shape``, every argument checked first (an allocation failure named too)."""
    if not (isinstance(shape, (tuple, list, torch.Size)) and shape
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise ValueError(f"shape must be a non-empty tuple of positive integers [B, ...], got {shape!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point and not dtype.is_complex):
        raise TypeError(f"dtype must be a floating-point torch.dtype (float32, float64, ...), got {dtype!r}")
    try:
        where = torch.device("cpu" if device is None else device)  # type: ignore[call-overload]
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a device torch knows ({err})") from None
    try:
        return randn(tuple(shape), generator, where, dtype)
    except RuntimeError as err:  # the allocator's "can't allocate memory", a device that is absent
        size = math.prod(shape) * dtype.itemsize
        raise ValueError(f"x_T of shape {tuple(shape)} ({size / 2**30:.3g} GiB of {dtype}) could not be made on "
                         f"{where}: {str(err).splitlines()[0][:200]}") from None


def explicit_timesteps(schedule: Schedule, timesteps: TimestepsLike, steps: int | None, spacing: str | None) -> tuple:
    """A caller's grid, validated, with ValueError if ``steps`` or ``spacing`` contradict it."""
    ts = check_timesteps(schedule, timesteps)
    if spacing is not None:
        raise ValueError(f"pass either an explicit timesteps grid or a spacing, not both (got spacing={spacing!r})")
    if steps is not None and steps != len(ts):
        raise ValueError(f"steps={steps!r} contradicts the explicit grid of {len(ts)} timesteps; omit steps or pass "
                         f"steps={len(ts)}")
    return ts


def sample(
    eps_model: EpsModel,
    schedule: Schedule,
    sampler: str | Callable[..., torch.Tensor] | None = None,
    steps: int | None = None,
    x: torch.Tensor | None = None,
    shape: tuple[int, ...] | None = None,
    generator: GeneratorArg = None,
    spacing: str | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    cond: Mapping[str, Any] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    timesteps: TimestepsLike | None = None,
    **options: Any,
) -> torch.Tensor:
    """Draw samples: x_T ~ N(0, I) (or the given ``x``), then ``steps`` steps of ``sampler``.

    ``sampler`` is a registered name (see ``diffkit.SAMPLERS``) or a function with
    the sampler signature; left out (None), the sampler, its options and the spacing
    come from the measured table of :mod:`diffkit.samplers.defaults` for this schedule's
    family and this many steps (N steps = N model calls: N visited timesteps, or N + 1 where the
    table takes the analytical first step, ``afs``) with the table's grid, a given
    ``spacing`` or ``timesteps`` still winning. The visited timesteps are ``steps``
    (default 20) of ``spacing`` (default: the sampler's own, see the registry, where the
    schedule has it, else the schedule's own: flow matching and zero terminal SNR start
    at sigma_k = inf, where there is no karras grid), or the explicit grid ``timesteps``
    (strictly decreasing, within [t_min, t_max]; e.g. from
    :func:`diffkit.optimize_timesteps`), which takes no spacing, and no steps but its
    length. ``cond`` is passed to the model as keyword arguments. ``shape``,
    ``device`` and ``dtype`` describe x_T when ``x`` is not given; it is drawn from
    ``generator`` first, as diffusers pipelines do, so seeds carry over.
    """
    check_schedule(schedule)
    if sampler is None:
        if options:
            raise ValueError(f"sampler option(s) {', '.join(sorted(options))} given without a sampler; name the "
                             "sampler they belong to (sampler=...)")
        n = len(check_timesteps(schedule, timesteps)) if timesteps is not None else steps
        n = DEFAULT_STEPS if n is None else n
        check_positive_int("steps", n, 1, MAX_STEPS)
        chosen = default_for(schedule, n)
        sampler, options = chosen.sampler, dict(chosen.options)
        if spacing is None and timesteps is None:  # the table's grid: its spacing with its grid options
            timesteps, steps = chosen.timesteps(schedule, n), None  # steps was the calls; the grid says the rest
        else:  # the caller's grid or spacing: a model call at every visited timestep
            options.pop("afs", None)
    if callable(sampler):
        fn, default_spacing = sampler, "karras"
    else:
        info = get_sampler(sampler)
        unknown = sorted(set(options) - set(info.options))
        if unknown:
            allowed = ", ".join(info.options) or "none"
            raise ValueError(f"sampler {info.name!r} has no option(s) {', '.join(unknown)}; allowed: {allowed}")
        fn, default_spacing = info.fn, info.default_spacing
    ts: np.ndarray | tuple[float, ...]
    if timesteps is None:
        ts = make_timesteps(schedule, DEFAULT_STEPS if steps is None else steps,
                            spacing or usable_spacing(schedule, default_spacing))
    else:
        ts = explicit_timesteps(schedule, timesteps, steps, spacing)
    if (x is None) == (shape is None):
        raise ValueError("pass exactly one of x (the starting noise) and shape (to draw it)")
    if x is None:
        x = _draw_x_T(shape, generator, device, dtype)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    if progress:
        callback = _progress(len(ts), callback)
    return fn(eps_model, x, schedule, ts, generator=generator, callback=callback, cond=cond, **options)
