"""Pipeline services: each joins a vision pipeline to its bank and live thresholds.

No MQTT here: commands call these services and the vision worker calls :class:`Engine`.
"""
