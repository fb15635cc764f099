"""One site's config: the model (`consulha.config.model`) and its YAML loader.

    model.py      frozen dataclasses and ConfigError: what the rest of consulha imports
    sections.py   load_config and one reader per section
    yamlnodes.py  YAML nodes with their lines, so every error is FILE:LINE: key.path: message
    values.py     converters for single values (durations, names, addresses, secrets)
"""

from consulha.config.model import *  # noqa: F401,F403
from consulha.config.model import __all__ as _model_names
from consulha.config.sections import load_config

__all__ = [*_model_names, "load_config"]
