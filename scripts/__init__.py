"""Runnable companions of the service: the demo (`python -m scripts.demo`, `make demo`), the
integrator simulator and the downstream consumers it drives, and service discovery for them."""
