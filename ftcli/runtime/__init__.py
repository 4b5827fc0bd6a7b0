"""Where a job runs: accelerator and precision, worker processes, sharding, signals, batched inference, atomic files."""
