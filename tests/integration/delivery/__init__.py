"""The delivery policy on a real Redis, in this process (tests/unit/test_policy.py has its pure
decisions)."""
