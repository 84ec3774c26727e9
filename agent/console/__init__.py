"""``maix-agent console``: a browser console for the whole fleet, an MQTT client like any other.

server.py (aiohttp: pages, session, WebSocket) · bridge.py (the MQTT side: fleet, replies, leases,
grabbed frames) · requests.py (what the browser may ask, validated before anything reaches an
agent) · fleet.py (cameras seen) · static/ (plain ES modules, canvas; no build step).
"""
