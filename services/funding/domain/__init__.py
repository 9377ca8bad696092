"""Funding's rules, with no I/O."""
