"""Feature banks: MaixPy file formats, the hybrid logical clock and the fleet bank entry.

- :mod:`agent.bank.maixpy` reads and writes MaixPy's ``my_classes.bin`` and ``faces.bin``
  byte for byte.
- :mod:`agent.bank.clock` is the hybrid logical clock that orders fleet writes.
- :mod:`agent.bank.entry` is one retained fleet bank message (DESIGN §5).
"""
