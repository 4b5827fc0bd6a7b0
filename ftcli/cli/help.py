"""``ftcli <command> --help``: the config groups and the options a user can choose.

Hydra's own ``$APP_CONFIG_GROUPS`` lists every entry of a group, including the typed schemas ftcli stores
beside the options (``model: ..., schema, tiny``; ``strategy: bitfit, bitfit_schema, ...``). ftcli's help
template (``configs/hydra/help/ftcli.yaml``) asks this module instead, through the ``${ftcli_groups:}``
resolver: the groups of this command's defaults list, each with the options found on the whole search
path (the package, ``--config-dir``, ``hydra.searchpath``), schemas left out. Light: no torch.
"""

from __future__ import annotations

from omegaconf import OmegaConf


def is_schema(option: str) -> bool:
    """The typed schemas ftcli registers in a group (``schema``, ``lora_schema``): not options to choose."""
    return option == "schema" or option.endswith("_schema")


def group_options(group: str, config_name: str | None = None, overrides: list[str] | None = None) -> list[str]:
    """The options of ``group`` that Hydra can load now, schemas left out."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    loader = GlobalHydra.instance().config_loader()
    found = loader.get_group_options(group, ObjectType.CONFIG, config_name=config_name, overrides=overrides or [])
    return sorted(o for o in found if not is_schema(o))


def config_groups() -> str:
    """One line per config group of the running command: its options and the current choice."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    choices = {str(k): v for k, v in hc.runtime.choices.items() if not str(k).startswith("hydra")}
    overrides = [str(o) for o in hc.overrides.hydra]  # hydra.searchpath=[...] adds options
    width = max((len(g) for g in choices), default=0)
    lines = []
    for group in sorted(choices):
        options = group_options(group, hc.job.config_name, overrides)
        listed = ", ".join(options) if options else "(none shipped: add your own, see below)"
        lines.append(f"  {group:<{width}}  {listed}  (now: {choices[group] or 'none'})")
    return "\n".join(lines) or "  (none: set any key below with key=value)"


def register_help_resolver() -> None:
    """``${ftcli_groups:}`` for the help template; call before Hydra prints ``--help``."""
    if not OmegaConf.has_resolver("ftcli_groups"):
        OmegaConf.register_new_resolver("ftcli_groups", config_groups, use_cache=False)
