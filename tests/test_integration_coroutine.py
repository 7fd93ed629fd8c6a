"""SamplerCoroutine: a pure sampler driven one model call at a time is the same sampler, and cleans up after itself."""

from __future__ import annotations

import gc

import pytest
import torch

from diffkit.models import GaussianMixture
from diffkit.samplers import SAMPLERS
from diffkit.schedules import Linear, timesteps

pytest.importorskip("greenlet")
from diffkit.integrations.coroutine import SamplerCoroutine, model_call_times

SCHEDULE = Linear()
MODEL = GaussianMixture.random(SCHEDULE, dim=8, components=3, seed=1)
X_T = torch.randn(4, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
TS = timesteps(SCHEDULE, 8, "karras")


def _drive(run: SamplerCoroutine, times, model=MODEL) -> torch.Tensor:
    """The caller's loop: evaluate the model at each requested state, at the call's known t."""
    x, i = run.start(), 0
    while not run.finished:
        x = run.send(model(x, torch.full((x.shape[0],), times[i], dtype=x.dtype)))
        i += 1
    assert i == len(times)  # one output per listed call, no more, no fewer
    return x


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_driven_sampler_is_the_sampler(name):
    """Same calls, same noise from the same generator, same arithmetic: bitwise the direct call's sample."""
    info = SAMPLERS[name]
    times = model_call_times(info.fn, SCHEDULE, TS, options=info.options)
    assert len(times) == info.nfe(len(TS))
    direct = info.fn(MODEL, X_T, SCHEDULE, TS, generator=torch.Generator().manual_seed(1))
    run = SamplerCoroutine(info.fn, X_T, SCHEDULE, TS, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_drive(run, times), direct, rtol=0, atol=0)


def test_call_times_do_not_touch_the_global_generator():
    state = torch.get_rng_state()
    model_call_times(SAMPLERS["ddpm"].fn, SCHEDULE, TS)
    assert torch.equal(torch.get_rng_state(), state)


def test_call_times_raise_what_the_run_would():
    with pytest.raises(ValueError, match="eta"):
        model_call_times(SAMPLERS["ddim"].fn, SCHEDULE, TS, options={"eta": 2.0})
    zero_snr = Linear(rescale_zero_terminal_snr=True)
    with pytest.raises(ValueError, match="alpha = 0"):  # an eps-model determines no x0 at zero SNR
        model_call_times(SAMPLERS["ddim"].fn, zero_snr, timesteps(zero_snr, 5, "trailing"))


def test_sampler_errors_surface_in_send():
    info = SAMPLERS["dpmpp_2m"]
    times = model_call_times(info.fn, SCHEDULE, TS)
    run = SamplerCoroutine(info.fn, X_T, SCHEDULE, TS)
    with pytest.raises(ValueError, match="non-finite"):  # reported after the loop, naming step and t
        _drive(run, times, model=lambda x, t: torch.full_like(x, float("nan")))
    assert run.finished is False
    run = SamplerCoroutine(info.fn, X_T, SCHEDULE, TS)
    run.start()
    with pytest.raises(ValueError, match="shape"):
        run.send(torch.zeros(3, 8, dtype=torch.float64))


def test_close_unwinds_an_unfinished_run():
    unwound = []

    def sampler(model, x, schedule, ts, *, generator=None):
        try:
            for t in ts:
                x = model(x, torch.full((x.shape[0],), t))
        finally:
            unwound.append(True)
        return x

    run = SamplerCoroutine(sampler, X_T, SCHEDULE, TS)
    run.start()
    run.send(torch.zeros_like(X_T))
    run.close()
    assert unwound == [True]
    with pytest.raises(RuntimeError, match="no model call is waiting"):
        run.send(torch.zeros_like(X_T))
    run = SamplerCoroutine(sampler, X_T, SCHEDULE, TS)  # dropped unfinished: unwound when collected
    run.start()
    del run
    gc.collect()
    assert unwound == [True, True]


def test_edited_state_replaces_the_samplers():
    """send(output, state): the sampler continues from ``state`` as if it had computed it."""
    info = SAMPLERS["ddim"]
    times = model_call_times(info.fn, SCHEDULE, TS)
    run = SamplerCoroutine(info.fn, X_T, SCHEDULE, TS)
    x = run.start()
    x = run.send(MODEL(x, torch.full((4,), times[0], dtype=x.dtype)))
    edited = x * 0.5
    out = MODEL(edited, torch.full((4,), times[1], dtype=x.dtype))
    x = run.send(out, state=edited)
    # The same as a run of the remaining steps started from the edited state with that output.
    rest = info.fn(MODEL, edited, SCHEDULE, TS[1:])
    while not run.finished:
        x = run.send(MODEL(x, torch.full((4,), times[run.calls], dtype=x.dtype)))
    torch.testing.assert_close(x, rest, rtol=0, atol=1e-12)
    run = SamplerCoroutine(info.fn, X_T, SCHEDULE, TS)
    run.start()
    with pytest.raises(ValueError, match="shape"):
        run.send(torch.zeros_like(X_T), state=torch.zeros(2, 8, dtype=torch.float64))


def test_the_same_x_T_is_never_written():
    before = X_T.clone()
    run = SamplerCoroutine(SAMPLERS["dpmpp_2m"].fn, X_T, SCHEDULE, TS)
    _drive(run, model_call_times(SAMPLERS["dpmpp_2m"].fn, SCHEDULE, TS))
    assert torch.equal(X_T, before)


def test_a_run_started_on_another_thread_is_dropped_not_switched_to():
    import threading

    info = SAMPLERS["ddim"]
    run = SamplerCoroutine(info.fn, X_T, SCHEDULE, TS)
    worker = threading.Thread(target=run.start)
    worker.start()
    worker.join()
    with pytest.raises(RuntimeError, match="thread that started it"):
        run.send(torch.zeros_like(X_T))
    run.close()  # no switch across threads: the run is dropped
