"""ftcli: fine-tune pretrained transformers from composed Hydra configs."""

__version__ = "0.1.0"
