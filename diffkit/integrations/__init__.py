"""diffkit inside other frameworks: an application layer above the core (nothing in the core imports it).

    coroutine    a pure sampler driven one model call at a time (SamplerCoroutine), and the
                 times of its model calls known before it runs (model_call_times)
    diffusers    DiffkitScheduler: any registered sampler as a diffusers scheduler, so a
                 diffusers pipeline runs it unchanged (needs the ``diffusers`` extra:
                 ``pip install "diffkit[diffusers]"``)

Importing this package imports no framework; each integration imports its own on use.
"""
