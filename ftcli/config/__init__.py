"""Configs: the typed schemas, their registration with Hydra, validation, and the one user-error type.
Imports no other ftcli folder, and no torch."""
