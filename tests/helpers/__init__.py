"""What several test files share: composing and running the real configs, tiny models, synthetic data with a
known rule. Fixtures live in conftest.py files; test files import builders from here, never from each other."""
