"""Runnable companions of the service: the demo (`python -m scripts.demo`, `make demo`), the
integrator simulator and the downstream consumers it drives; and, for the demo and the tests
alike, running child processes and finding or starting the services (tests import these;
scripts never import tests)."""
