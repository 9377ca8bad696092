"""The notifier's rules, with no I/O."""
