"""Files that travel inside checkpoints (transformers copies them beside the weights): self-contained, torch and
transformers only."""
