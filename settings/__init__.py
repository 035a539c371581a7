"""secretmagic's two levels of configuration (seed «Конфигурация»).

- Immutable (`settings.env`): the environment and Docker secrets, read once at start; a bad value
  stops the process with the variable named.
- Mutable (`settings.config`, `settings.live`): configs/config.dev.yaml, hot-reloaded without a
  restart; an invalid file is rejected and the last good one stays.
"""

from settings.config import Config, ConfigError
from settings.env import MESSENGER_VARS, MessengerSettings, Settings, SettingsError, load_settings
from settings.live import LiveConfig

__all__ = [
    "MESSENGER_VARS",
    "Config",
    "ConfigError",
    "LiveConfig",
    "MessengerSettings",
    "Settings",
    "SettingsError",
    "load_settings",
]
