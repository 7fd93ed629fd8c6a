"""Fuzzing ``diffkit.sample``'s arguments: a valid call returns a finite sample and leaves x_T alone; a call
with one bad argument raises ValueError/TypeError naming that argument, before any work and within bounded memory.

Hypothesis draws a valid call (sampler, steps, spacing, schedule, x or shape/dtype, generators, options,
cond, callback, progress) and then, half the time, replaces exactly one argument by a bad value from that
argument's pool. ``SAMPLER_CASES`` below pins the cases that once ended in a traceback or a silent wrong
result inside diffkit/samplers (each fixed there), one test each.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import bounded_memory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffkit
from diffkit.samplers import SAMPLERS
from diffkit.schedules import Cosine, Linear
from diffkit.schedules.spacing import DISCRETE_SPACINGS, SPACINGS

INTEGER_SPACINGS = DISCRETE_SPACINGS + ("simple",)  # integer timesteps of DiscreteVP: steps <= T

SCHEDULES = {"linear": Linear(), "cosine": Cosine(), "linear_T8": Linear(8, 1e-3, 0.2)}
# Which argument each bad value belongs to, as the error message must name it.
NAMES = {"eps_model": r"model|eps", "schedule": r"schedule", "sampler": r"sampler", "steps": r"steps",
         "x": r"\bx\b|x_T|starting noise", "shape": r"shape", "generator": r"generator|seed", "spacing": r"spacing",
         "callback": r"callback", "progress": r"progress", "cond": r"cond", "device": r"device", "dtype": r"dtype",
         "eta": r"eta", "r": r"\br\b", "variance": r"variance", "noise_sampler": r"noise",
         "option": r"option"}  # fmt: skip


def eps_model(x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
    """A smooth eps-model that also checks what the sampler passes it."""
    assert isinstance(t, torch.Tensor) and t.shape == x.shape[:1] and t.is_floating_point()
    assert all(v.shape[:1] == x.shape[:1] for v in cond.values() if isinstance(v, torch.Tensor) and v.ndim)
    return 0.5 * torch.tanh(x)


@st.composite
def valid_calls(draw) -> dict:
    sampler = draw(st.sampled_from(sorted(SAMPLERS)))
    schedule_name = draw(st.sampled_from(sorted(SCHEDULES)))
    schedule = SCHEDULES[schedule_name]
    spacing = draw(st.sampled_from([None, *SPACINGS]))
    effective = spacing or SAMPLERS[sampler].default_spacing
    high = schedule.num_train_timesteps if effective in INTEGER_SPACINGS else 12
    steps = draw(st.integers(2 if effective == "leading" else 1, min(high, 12)))
    batch = draw(st.integers(1, 4))
    dims = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    call = {"eps_model": eps_model, "schedule": schedule, "sampler": sampler, "steps": steps, "spacing": spacing}
    if draw(st.booleans()):
        dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
        x = torch.randn((batch, *dims), generator=torch.Generator().manual_seed(draw(st.integers(0, 99)))).to(dtype)
        if draw(st.booleans()) and len(dims) >= 1:
            x = x.transpose(0, -1).contiguous().transpose(0, -1)  # non-contiguous, same values and shape
        call["x"] = x
    else:
        call["shape"] = draw(st.sampled_from([tuple, list]))((batch, *dims))
        call["dtype"] = draw(st.sampled_from([torch.float32, torch.float64]))
        call["device"] = draw(st.sampled_from([None, "cpu", torch.device("cpu")]))
    kind = draw(st.sampled_from(["none", "one", "per-sample"]))
    if kind == "one":
        call["generator"] = torch.Generator().manual_seed(draw(st.integers(0, 2**64 - 1)))
    elif kind == "per-sample":
        call["generator"] = [torch.Generator().manual_seed(i) for i in range(batch)]
    options = dict(SAMPLERS[sampler].options)
    for name in options:
        if name == "eta" and draw(st.booleans()):
            call["eta"] = draw(st.floats(0, 1))
        if name == "r" and draw(st.booleans()):
            call["r"] = draw(st.floats(0.01, 0.99))
        if name == "variance" and draw(st.booleans()):
            call["variance"] = draw(st.sampled_from(["fixed_small", "fixed_large"]))
    if draw(st.booleans()):
        call["cond"] = draw(st.sampled_from([{}, {"y": torch.arange(batch)}, {"scale": 2.0}]))
    call["progress"] = draw(st.booleans())
    if draw(st.booleans()):
        call["callback"] = []  # replaced by a recorder in the test
    return call


def _bad_values(call: dict) -> list[tuple[str, str, object]]:
    """(argument, name its error must mention, bad value) that diffkit rejects today, for this call."""
    sampler, schedule = call["sampler"], call["schedule"]
    batch = call["x"].shape[0] if "x" in call else call["shape"][0]
    # (sampler=None is no longer bad: it picks the measured default, diffkit.samplers.defaults)
    bad = [("sampler", "sampler", v) for v in (5, "euler_magic", ["ddim"])]
    bad += [("steps", "steps", v) for v in (0, -3, 2.5, "5", True, 10**9, 100_001)]
    bad += [("spacing", "spacing", v) for v in ("cubic", 5, ["karras"])]
    bad += [("spacing", "steps", "leading")] if call["steps"] == 1 else []
    if (call["spacing"] or SAMPLERS[sampler].default_spacing) in INTEGER_SPACINGS:
        bad += [("steps", "steps", schedule.num_train_timesteps + 1)]
    bad += [("option", "option", {"bogus_option": 1})]
    options = SAMPLERS[sampler].options
    if "eta" in options:
        bad += [("eta", "eta", v) for v in (-0.1, 1.5, math.nan, math.inf, "0.5", torch.tensor(0.5))]
    if "r" in options:
        bad += [("r", "r", v) for v in (0.0, 1.0, -1.0, math.nan)]
    if "variance" in options:
        bad += [("variance", "variance", v) for v in ("fixed", 3, None)]
    if "noise_sampler" in options and call["steps"] > 1:  # one step is the final one: no noise is drawn
        bad += [("noise_sampler", "noise_sampler", lambda s, s_next: torch.zeros(1, 1, 1, 1, 7))]
    if "x" in call:
        x = call["x"]
        bad += [("x", "x", v) for v in (x.long(), x.bool(), x.to(torch.complex64), torch.tensor(1.0), x.tolist())]
        bad += [("shape", "shape", tuple(x.shape))]  # x and shape together
    else:
        bad += [("shape", "shape", v) for v in ((0, 2), (-1, 2), (batch, 0), "ab", (2.5, 2))]
        bad += [("shape", "shape", None)]  # neither x nor shape
    bad += [("generator", "generator", v) for v in ("seed", [1, 2], 5)]
    if batch > 1:
        bad += [("generator", "generator", [torch.Generator()] * (batch + 1))]
    bad += [("eps_model", "eps_model", v) for v in (
        lambda x, t, **c: None,
        lambda x, t, **c: [0.0],
        lambda x, t, **c: torch.zeros(x.shape[0] + 1, *x.shape[1:], dtype=x.dtype),
        lambda x, t, **c: torch.full_like(x, math.nan),
        lambda x, t, **c: torch.full_like(x, math.inf),
    )]  # fmt: skip
    bad += [("eps_model", "eps_model", lambda x, t, **c: torch.zeros_like(x, dtype=torch.int64))]
    if call.get("cond"):
        bad += [("cond", "cond", {"y": torch.arange(batch + 1)})]
    return bad


def _run(call: dict) -> tuple[torch.Tensor, list[int]]:
    seen: list[int] = []
    args = dict(call)
    if "callback" in args and args["callback"] == []:
        args["callback"] = lambda i, t, x, x0: seen.append(i)
    with bounded_memory():
        return diffkit.sample(**args), seen


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=valid_calls(), data=st.data())
def test_sample_arguments(call, data):
    before = call["x"].clone() if "x" in call else None
    bad = _bad_values(call)
    if data.draw(st.booleans(), label="spoil one argument"):
        argument, name, value = data.draw(st.sampled_from(bad), label="bad argument")
        if argument == "option":
            call.update(value)
        elif argument in ("eps_model", "x", "shape", "generator", "cond", "steps", "sampler", "spacing"):
            if argument == "shape" and value is None:
                call.pop("shape")
                call.pop("dtype"), call.pop("device")
            else:
                call[argument] = value
        else:
            call[argument] = value
        with pytest.raises((ValueError, TypeError)) as info:
            _run(call)
        message = str(info.value)
        assert re.search(NAMES[name], message), f"{argument}={value!r}: the error does not name it: {message}"
        return
    out, seen = _run(call)
    shape = tuple(call["x"].shape) if "x" in call else tuple(call["shape"])
    assert tuple(out.shape) == shape and torch.isfinite(out).all()
    requested = call.get("dtype", getattr(call.get("x"), "dtype", None))
    expected = torch.float64 if requested == torch.float64 else torch.float32
    assert out.dtype == expected
    if before is not None:
        assert torch.equal(call["x"], before), "the caller's x_T was written"
    if "callback" in call:
        assert seen == list(range(call["steps"]))


# -- cases that once failed inside diffkit/samplers (fixed there) ---------------------------------------


def _writes_its_input(x, t, **cond):
    x.mul_(0.5)  # a model that works in place on the tensor it is given
    return torch.tanh(x)


def _base(sampler: str = "ddim", **changes) -> dict:
    call = {"eps_model": eps_model, "schedule": Linear(), "sampler": sampler, "steps": 5,
            "x": torch.randn(3, 2, generator=torch.Generator().manual_seed(0))}  # fmt: skip
    call.update(changes)
    return call


def _x_t_untouched(call: dict) -> None:
    """A model writing into its input is refused, naming the model, and the caller's x_T keeps its values."""
    before = call["x"].clone()
    with pytest.raises(ValueError, match=NAMES["eps_model"]):
        diffkit.sample(**call)
    assert torch.equal(call["x"], before), "the caller's x_T was written"


def _clear_error(name: str):
    def check(call: dict) -> None:
        with pytest.raises((ValueError, TypeError), match=NAMES[name]):
            with bounded_memory():
                diffkit.sample(**call)

    return check


def _no_silent_non_finite(call: dict) -> None:
    try:
        out = diffkit.sample(**call)
    except ValueError as err:
        assert re.search(NAMES["x"], str(err)), f"blames something else: {err}"
        return
    assert torch.isfinite(out).all(), "returned a non-finite sample without an error"


INF_X = torch.full((3, 2), math.inf)
NAN_X = torch.full((3, 2), math.nan)
SAMPLER_CASES = [
    *[(f"model writes into x ({s})", _x_t_untouched, _base(s, eps_model=_writes_its_input)) for s in SAMPLERS],
    *[(f"cond is a {type(v).__name__}", _clear_error("cond"), _base(cond=v))
      for v in ([1, 2], "ab", 5, torch.zeros(3))],
    *[(f"x holds inf ({s})", _no_silent_non_finite, _base(s, x=INF_X.clone())) for s in ("ddpm", "ddim", "dpmpp_sde")],
    *[(f"x holds inf ({s}): blamed on the model", _no_silent_non_finite, _base(s, x=INF_X.clone()))
      for s in ("dpmpp_2m", "dpmpp_2m_sde")],
    ("x holds NaN: blamed on the model", _no_silent_non_finite, _base(x=NAN_X.clone())),
    *[(f"generator={v!r} ignored by {s}", _clear_error("generator"), _base(s, generator=v))
      for s in ("ddim", "dpmpp_2m") for v in (5, "seed")],
    ("generator='seed' ignored by dpmpp_2m_sde at eta=0", _clear_error("generator"),
     _base("dpmpp_2m_sde", eta=0.0, generator="seed")),
    ("generator='seed' ignored by ddpm at 1 step", _clear_error("generator"),
     _base("ddpm", steps=1, spacing="trailing", generator="seed")),
    ("generator=5 (dpmpp_sde): 'int' object is not iterable", _clear_error("generator"),
     _base("dpmpp_sde", generator=5)),
    ("generator='seed' (dpmpp_sde): AttributeError", _clear_error("generator"), _base("dpmpp_sde", generator="seed")),
    ("generator=[1, 2] (dpmpp_sde)", _clear_error("generator"), _base("dpmpp_sde", generator=[1, 2])),
    ("generator='seed' (dpmpp_sde, 1 step): accepted", _clear_error("generator"),
     _base("dpmpp_sde", steps=1, generator="seed")),
    ("int64 model output (ddpm): NotImplementedError in the noise draw", _clear_error("eps_model"),
     _base("ddpm", eps_model=lambda x, t, **c: torch.zeros_like(x, dtype=torch.int64))),
    ("int64 model output (ddim, eta=1): NotImplementedError in the noise draw", _clear_error("eps_model"),
     _base("ddim", eta=1.0, eps_model=lambda x, t, **c: torch.zeros_like(x, dtype=torch.int64))),
    ("r='x' (dpmpp_sde): '<' not supported", _clear_error("r"), _base("dpmpp_sde", r="x")),
    *[(f"noise_sampler=5 ({s}): not callable, found after model calls", _clear_error("noise_sampler"),
       _base(s, noise_sampler=5)) for s in ("dpmpp_2m_sde", "dpmpp_sde")],
    ("callback=5: not callable, found after a model call", _clear_error("callback"), _base(callback=5)),
    ("progress='yes' accepted", _clear_error("progress"), _base(progress="yes")),
    ("device='nope': torch RuntimeError", _clear_error("device"), _base(x=None, shape=(3, 2), device="nope")),
    ("dtype=torch.int64: NotImplementedError", _clear_error("dtype"), _base(x=None, shape=(3, 2), dtype=torch.int64)),
    ("schedule=5: AttributeError", _clear_error("schedule"), _base(schedule=5)),
    ("eps_model=5: 'int' object is not callable", _clear_error("eps_model"), _base(eps_model=5)),
    ("shape=3: 'int' object is not iterable", _clear_error("shape"), _base(x=None, shape=3)),
    ("shape=(True, 2): torch's randn TypeError", _clear_error("shape"), _base(x=None, shape=(True, 2))),
    ("shape of 8 TB: allocator RuntimeError", _clear_error("shape"), _base(x=None, shape=(10**6, 10**6, 2))),
]


@pytest.mark.parametrize("check, call", [pytest.param(check, call, id=name) for name, check, call in SAMPLER_CASES])
def test_sampler_side_cases(check, call):
    check(call)
