"""Every task's schema, one module a task (its keys, its metrics, its option name: spelled here once).

Importing this package imports every module in it, so a new module here is a new ``task=`` option: the registry
(``config/registry.py``) registers its schema with Hydra, and ``tasks/registry.py`` gives it inputs and an objective.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
