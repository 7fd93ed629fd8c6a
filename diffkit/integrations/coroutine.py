"""A pure sampler driven one model call at a time, for frameworks that own the sampling loop.

diffkit's samplers own their loop: ``sample_<name>(model, x, schedule, timesteps, ...)``
calls the model and returns the sample. Frameworks such as diffusers own *their*
loop and call a stateful scheduler once per model evaluation. :class:`SamplerCoroutine`
joins the two without a second, stateful copy of any sampler: the sampler function
runs as a coroutine against a proxy model; each proxy call suspends the sampler and
hands its state x to the caller, who evaluates the real model and sends the output back:

    run = SamplerCoroutine(sample_dpmpp_2m, x_T, schedule, ts)
    x = run.start()                          # the state of the first model call
    while not run.finished:
        x = run.send(model(x, t))            # the state of the next call; the sample after the last

So the sampler runs exactly as under ``diffkit.sample``: the same calls, the same
noise from the same generator, the same arithmetic. Which t each call has is known
before the run (:func:`model_call_times`: a sampler's calls depend on its timesteps and
options, never on tensor values), so the caller never reads a tensor on the host to
find out.

The coroutine is a greenlet: the sampler's stack, suspended and resumed on the
caller's own thread. A round trip costs ~1 µs; a worker thread handing over through
two queues cost ~40 µs per round trip on this repository's shared 2-core CPU machine,
plus a thread start per run, more than a whole diffusers scheduler step at SD latents.
Being on the caller's thread, the sampler runs under the caller's grad and inference
modes and CUDA stream. An exception raised in the sampler re-raises in ``send``;
:meth:`close`, or dropping the run, unwinds a run left unfinished (GreenletExit raised
at its pending model call); no thread is ever left behind.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from diffkit.models.prediction import Predictor
from diffkit.schedules.base import Schedule

try:
    import greenlet
except ImportError as err:
    raise ImportError('diffkit.integrations.coroutine needs greenlet, which is not installed: pip install greenlet '
                      '(it comes with the diffusers extra: pip install "diffkit[diffusers]")') from err

Sampler = Callable[..., torch.Tensor]


class _Finished:
    """What the coroutine returns to its caller at the end: the sample."""

    __slots__ = ("sample",)

    def __init__(self, sample: torch.Tensor) -> None:
        self.sample = sample


def _proxy(x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
    """The model the sampler calls: suspends the sampler, handing x to the caller; resumes with the output."""
    return greenlet.getcurrent().parent.switch(x)


def _body(sampler: Sampler, args: tuple, kwargs: dict) -> _Finished:
    return _Finished(sampler(*args, **kwargs))


class SamplerCoroutine:
    """``sampler(model, x, schedule, timesteps, generator=..., **options)`` run one model call at a time."""

    def __init__(
        self,
        sampler: Sampler,  # a function with the sampler signature (diffkit.samplers)
        x: torch.Tensor,  # x_T: the caller's, never written
        schedule: Schedule,  # the forward process
        timesteps: np.ndarray,  # the visited timesteps
        *,
        prediction_type: str = "epsilon",  # what the model outputs (diffkit.conversions.PREDICTION_TYPES)
        generator: torch.Generator | list[torch.Generator] | None = None,  # the sampler's randomness
        options: Mapping[str, Any] | None = None,  # the sampler's keyword options
    ) -> None:
        model = Predictor(_proxy, prediction_type)
        self._args: tuple[Sampler, tuple, dict[str, Any]] | None = (
            sampler, (model, x, schedule, timesteps), dict(options or {}, generator=generator))
        self._greenlet = greenlet.greenlet(_body)
        self._pending: torch.Tensor | None = None  # the state of the model call waiting for its output
        self._outputs: dict[int, weakref.ref] = {}  # id -> outputs sent, which a state must not be
        self.finished = False
        self.calls = 0  # model outputs sent so far

    def start(self) -> torch.Tensor:
        """Run the sampler up to its first model call; returns that call's state x (or the sample, if none)."""
        if self._args is None:
            raise RuntimeError("this sampler run has already started")
        args, self._args = self._args, None
        return self._resume(*args)

    def send(self, output: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """The model's ``output`` at the pending call; returns the next call's x, or the sample when finished.

        ``state``: where the caller's state differs from the x it was handed (a framework
        that edits its latents between steps), the values the sampler continues from:
        they replace the pending state, as if the sampler had computed them.
        """
        x = self._pending
        if x is None:
            raise RuntimeError("no model call is waiting for an output" + (
                ": the run is finished" if self.finished else ": call start() first"))
        if state is not None and state is not x:
            if state.shape != x.shape:
                raise ValueError(f"the state to continue from has shape {tuple(state.shape)}, the sampler's "
                                 f"{tuple(x.shape)}")
            sent = self._outputs.get(id(x))
            if sent is not None and sent() is x:  # the state is an earlier model output the sampler still reads
                raise ValueError("this sampler's state is a model output it keeps; it cannot continue from "
                                 "an edited state")
            x.data.copy_(state)  # through .data: the model call's no-write-into-x check stays for models
        self._pending = None
        self._outputs[id(output)] = weakref.ref(output)
        self.calls += 1
        return self._resume(output)

    def close(self) -> None:
        """Stop an unfinished run, the sampler unwinding from its pending model call; nothing to do once finished."""
        self._pending = None
        if self._greenlet:  # started and not finished
            try:
                self._greenlet.parent = greenlet.getcurrent()
            except ValueError:  # started on another thread: dropped here, unwound there once collected
                self._greenlet = greenlet.greenlet(_body)  # (a fresh, never-started one in its place)
                return
            self._greenlet.throw()  # GreenletExit at the pending call: the sampler unwinds and ends

    def _resume(self, *value: Any) -> torch.Tensor:
        try:
            self._greenlet.parent = greenlet.getcurrent()  # suspend back to whoever resumes it
        except ValueError as err:  # "parent cannot be on a different thread"
            raise RuntimeError(f"a sampler run continues on the thread that started it ({err})") from None
        result = self._greenlet.switch(*value)
        if isinstance(result, _Finished):
            self.finished = True
            return result.sample
        self._pending = result
        return result


def model_call_times(sampler: Sampler, schedule: Schedule, timesteps: np.ndarray, *, prediction_type: str = "epsilon",
                     options: Mapping[str, Any] | None = None) -> tuple[float, ...]:
    """The t of every model call ``sampler`` makes on ``timesteps`` with ``options``, in order (float64).

    A dry run on a one-element float64 state with a model that returns zeros, noise
    from a throwaway generator (the global one is not touched), and a ``noise_sampler``
    option, where ``options`` has the key (None included), replaced by zeros: noise never
    changes which calls a sampler makes, and a Brownian tree would cost ~0.1 s here.
    Bad options and timesteps raise here, as the real run would.
    """
    times: list[float] = []

    def zeros(x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        times.append(float(t[0]))
        return torch.zeros_like(x)

    options = dict(options or {})
    x = torch.zeros(1, 1, dtype=torch.float64)
    if "noise_sampler" in options:
        options["noise_sampler"] = lambda lam_from, lam_to: torch.zeros_like(x)
    sampler(Predictor(zeros, prediction_type), x, schedule, timesteps, generator=torch.Generator().manual_seed(0),
            **options)
    return tuple(times)
