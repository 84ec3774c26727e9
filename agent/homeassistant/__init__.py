"""Home Assistant: MQTT discovery (``discovery``), JSON state mirrors (``mirror``) and the bridge
that publishes them and turns Home Assistant's writes into protocol commands (``bridge``)."""

from agent.homeassistant.bridge import HomeAssistantBridge
from agent.homeassistant.discovery import DeviceInfo, HaTopics

__all__ = ["DeviceInfo", "HaTopics", "HomeAssistantBridge"]
