"""The production topology of ctflow (see :mod:`ctflow.deploy.topology` and ``docs/production.md``)."""
