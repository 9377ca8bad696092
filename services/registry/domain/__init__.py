"""The registry's rules, with no I/O."""
