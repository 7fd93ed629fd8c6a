"""diffkit's samplers inside diffusers pipelines: one line to adopt them.

    from diffkit.integrations.diffusers import DiffkitScheduler
    pipe.scheduler = DiffkitScheduler.from_scheduler(pipe.scheduler, sampler="dpmpp_2m")

    scheduler  DiffkitScheduler: any registered sampler behind diffusers' scheduler protocol
    config     schedule_from_config: a diffusers config as a diffkit schedule and prediction type;
               DynamicShift: Flux-style dynamic shifting (mu per image size)
    flow       what flow-matching pipelines (SD3, Flux) pass to set_timesteps: sigmas, mu

Needs diffusers (``pip install "diffkit[diffusers]"``); importing this package without it
raises ImportError naming that extra.
"""

try:
    import diffusers  # noqa: F401  (the dependency, checked before the scheduler module needs it)
except ImportError as err:
    raise ImportError('diffkit.integrations.diffusers needs diffusers, which is not installed: '
                      'pip install "diffkit[diffusers]"') from err

from diffkit.integrations.diffusers.config import DynamicShift, config_from_schedule, schedule_from_config
from diffkit.integrations.diffusers.scheduler import DiffkitScheduler

__all__ = ["DiffkitScheduler", "DynamicShift", "config_from_schedule", "schedule_from_config"]
