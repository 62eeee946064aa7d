"""Where test and demo data is made: simulated factories and their feed through a real deployment.

* :mod:`simulation.factories`: solar-cell and rubber-mixing lines with planted truth (the parameters
  that drive yield, a deteriorating factory), as Reading v1 readings (a line's truth in
  :mod:`simulation.lines`, its devices' readings in :mod:`simulation.device_readings`);
* :mod:`simulation.feed`: enrolls the simulated devices, opens lots and places orders on a
  deployment, and streams the readings to a ledger.

It stands above ``contracts`` and ``device_attestation`` and beside ``auditor``; the service never
imports it (``docs/architecture.md``).
"""
