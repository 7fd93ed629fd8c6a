"""Files: what diffkit reads and writes, above the core, below the applications.

tensorfile   the safetensors format in plain Python (bounded, never executes anything) and atomic writes
png          PNG images with the standard library, and sample grids
weights      U-Net weight files (safetensors; pickles only through weights_only) and diffusers model folders
pretrained   a model file: U-Net weights + config + the schedule it was trained with
timesteps    a timestep grid as JSON, with the schedule it belongs to (checked on load)
"""
