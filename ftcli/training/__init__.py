"""The training run's parts: the loop and its phases, strategies, optimiser, frozen-feature cache, checkpoints,
resumable state, sweep trials."""
