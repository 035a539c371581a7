"""The `secretmagic` CLI: in-process through main(argv), and as real processes (`python -m app`
and the installed `secretmagic` entry point), against real Redis and PostgreSQL."""
