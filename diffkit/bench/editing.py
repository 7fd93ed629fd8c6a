"""Editing measured: inpainting against the mixture's exact conditional, inversion round trips, img2img.

Gaussian mixture (``GaussianMixture.random(Linear(), dim=8, components=3, seed=1)``, float64, exact):

- ``inpainting_rows``: coordinates 0-3 known, 4-7 inpainted. Two cases. "joint": the known
  values are those of N data samples, so an exact method gives (known, inpainted) distributed as
  the data: sliced W2 to N fresh data samples (noise floor: two data sets) and the total variation
  of the mode weights. "hard": one fixed known half, midway between two components' means, whose
  exact conditional (``GaussianMixture.conditional``) puts > 99.9% of its mass on one component:
  sliced W2 to N exact conditional samples, the error of the mean and the mass found on that
  component. Rows: sampler x steps x resample (x jump).
- ``inversion_rows``: x0 -> ``invert`` -> x_T -> back, RMS to x0: "ode" runs the same grid down
  to t_min (the ODE round trip alone), "sample" is ``diffkit.sample`` with the same steps (the
  ODE back, then the final step to the data, whose floor is x0's denoising as if at t_min).
  Mixture data, and held-out digits with the embedded model (conditional on their labels).
- ``img2img_rows``: held-out digits edited at strengths 0.1..1 towards their own label and towards
  the next one ((y + 1) mod 10): RMS to the input, SVC accuracy on the target and on the source
  label, FD; and on the mixture, data samples edited at each strength keep the data law (sliced
  W2 to fresh data, vs its floor).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

import diffkit
from diffkit.bench.metrics import mode_weight_tv, projections, rms, sliced_w2
from diffkit.models import GaussianMixture
from diffkit.samplers import SAMPLERS, Grid
from diffkit.schedules import Linear, timesteps

INVERSION_SAMPLERS = (("ddim", {}), ("dpmpp_2m", {}), ("heun", {}), ("dpmpp_3m_sde", {"eta": 0.0}))


def mixture() -> GaussianMixture:
    return GaussianMixture.random(Linear(), dim=8, components=3, seed=1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def inpainting_rows(n: int = 2000, samplers: Sequence[str] = ("ddpm", "ddim", "dpmpp_2m"),
                    steps: Sequence[int] = (10, 25, 50, 100), resamples: Sequence[int] = (1, 2, 5, 10),
                    jumps: Sequence[tuple[int, int, int]] = ((100, 10, 5), (100, 10, 10)), seed: int = 0) -> dict:
    """{"floors": ..., "rows": [...]} (module docstring); ``jumps``: extra (steps, resample, jump) for ddpm."""
    g = mixture()
    known = torch.arange(8) < 4
    mask = known.expand(n, 8)
    data = g.sample_data(n, _gen(seed))
    hard = torch.zeros(8, dtype=torch.float64)
    hard[:4] = 0.5 * (g.means[0, :4] + g.means[1, :4])
    cond = g.conditional(known, hard)
    main = int(cond.weights.argmax())
    exact, proj8, proj4 = cond.sample_data(n, _gen(seed + 1)), projections(8), projections(4)
    fresh = g.sample_data(n, _gen(seed + 2))
    floors = {"joint_sw2": sliced_w2(g.sample_data(n, _gen(seed + 3)), fresh, proj8),
              "hard_sw2": sliced_w2(cond.sample_data(n, _gen(seed + 4)), exact, proj4),
              "hard_main_weight": float(cond.weights[main])}
    plan = [(s, n_steps, r, 1) for s in samplers for n_steps in steps for r in resamples]
    plan += [("ddpm", n_steps, r, j) for n_steps, r, j in jumps]
    rows = []
    for sampler, n_steps, resample, jump in plan:
        joint = diffkit.inpaint(g, g.schedule, data, mask, sampler, n_steps, resample, _gen(seed + 5), jump=jump)
        inpainted = diffkit.inpaint(g, g.schedule, hard.expand(n, 8), mask, sampler, n_steps, resample,
                                    _gen(seed + 6), jump=jump)[:, 4:]
        rows.append({"sampler": sampler, "steps": n_steps, "resample": resample, "jump": jump,
                     "nfe": resample * n_steps,
                     "joint_sw2": sliced_w2(joint, fresh, proj8),
                     "joint_mode_tv": mode_weight_tv(g.assign_modes(joint), g.weights),
                     "hard_sw2": sliced_w2(inpainted, exact, proj4),
                     "hard_mean_error": float((inpainted.mean(0) - cond.mean()).norm()),
                     "hard_main_weight": float((cond.assign_modes(inpainted) == main).double().mean())})
        print(rows[-1], flush=True)
    return {"n": n, "floors": floors, "rows": rows}


def round_trip(model, schedule, x0: torch.Tensor, sampler: str, steps: int, cond=None, **options) -> dict:
    """RMS of x0 -> x_T -> x0, by the ODE alone and by ``diffkit.sample`` (module docstring)."""
    with torch.inference_mode():
        x_T = diffkit.invert(model, schedule, x0, sampler, steps, cond=cond, **options)
        up = timesteps(schedule, steps, "karras")
        ode = SAMPLERS[sampler].fn(model, x_T, schedule, Grid(up[:-1], end=up[-1]), cond=cond, **options)
        full = diffkit.sample(model, schedule, sampler, steps, x=x_T, cond=cond, **options)
    return {"ode": rms(ode, x0), "sample": rms(full, x0)}


def inversion_rows(steps: Sequence[int] = (10, 20, 50, 100, 200), n: int = 200, digits: int = 100,
                   seed: int = 0) -> list[dict]:
    """Round-trip errors against steps for every deterministic solver, on the mixture and on digits."""
    g = mixture()
    x0 = g.sample_data(n, _gen(seed))
    cases = [("mixture", g, g.schedule, x0, None)]
    if digits:
        from diffkit.digits.editing import heldout_inputs
        from diffkit.digits.pretrained import load_pretrained

        unet, schedule = load_pretrained()
        images, labels = heldout_inputs(digits)
        cases.append(("digits", unet, schedule, images, {"y": labels}))
    rows = []
    for case, model, schedule, x, cond in cases:
        floor = rms(SAMPLERS["ddim"].fn(model, x, schedule, [schedule.t_min], cond=cond), x)
        for name, options in INVERSION_SAMPLERS:
            for n_steps in steps:
                rows.append({"case": case, "sampler": name, "steps": n_steps, "final_step_floor": floor,
                             **round_trip(model, schedule, x, name, n_steps, cond, **options)})
                print(rows[-1], flush=True)
    return rows


def img2img_rows(strengths: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                 sampler: str = "dpmpp_2m", steps: int = 20, guidance: float = 2.0, n: int = 2000, digits: bool = True,
                 seed: int = 0) -> list[dict]:
    """img2img at each strength on the mixture (law kept) and on held-out digits (module docstring)."""
    g = mixture()
    data, fresh, proj = g.sample_data(n, _gen(seed)), g.sample_data(n, _gen(seed + 1)), projections(8)
    floor = sliced_w2(g.sample_data(n, _gen(seed + 2)), fresh, proj)  # two exact data sets
    rows = [{"case": "mixture floor", "strength": None, "sw2_to_data": floor}]
    for s in strengths:
        edited = diffkit.img2img(g, g.schedule, data, s, sampler, steps, _gen(seed + 3))
        rows.append({"case": "mixture", "strength": s, "t_start": diffkit.editing.start_time(g.schedule, s),
                     "sw2_to_data": sliced_w2(edited, fresh, proj), "rms_to_input": rms(edited, data)})
        print(rows[-1], flush=True)
    if not digits:
        return rows
    from diffkit.digits.editing import edit_digits, heldout_inputs
    from diffkit.digits.evaluate import classifier, digits_fd
    from diffkit.digits.pretrained import load_pretrained

    unet, schedule = load_pretrained()
    images, labels = heldout_inputs(297)
    for target_name, target in (("own", labels), ("next", (labels + 1) % 10)):
        for s in strengths:
            x = edit_digits(unet, schedule, images, target, s, sampler=sampler, steps=steps, guidance=guidance,
                            seed=seed)
            rows.append({"case": f"digits to {target_name} label", "strength": s,
                         "t_start": diffkit.editing.start_time(schedule, s), "rms_to_input": rms(x, images),
                         "accuracy_target": classifier().accuracy(x, target),
                         "accuracy_source": classifier().accuracy(x, labels), "fd": digits_fd(x)})
            print(rows[-1], flush=True)
    return rows
