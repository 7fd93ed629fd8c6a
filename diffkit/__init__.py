"""diffkit: exact, fast, measured samplers for diffusion models.

    import diffkit
    schedule = diffkit.schedules.Linear()
    model = diffkit.models.GaussianMixture.two_d(schedule)
    x0 = diffkit.sample(model, schedule, "dpmpp_2m", steps=20, shape=(1000, 2))
"""

from diffkit import _deprecated, conversions, models, schedules
from diffkit.samplers import SAMPLERS, optimize_timesteps, sample
from diffkit.schedules import timesteps

__all__ = ["SAMPLERS", "conversions", "models", "optimize_timesteps", "sample", "schedules", "timesteps"]
__version__ = "0.1.0"

_deprecated.install()  # 0.1 import paths (diffkit.pretrained, ...) keep working, with a warning
