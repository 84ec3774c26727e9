"""The broker link. Only ``client.py`` imports paho."""
