"""The only modules that touch a dependency's private members, one per dependency, each pinned
by a test (tests/gateway/test_adapters.py) so that an incompatible upgrade fails there."""
