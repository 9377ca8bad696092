"""Training's rules, with no I/O."""
