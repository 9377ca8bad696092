"""Training's schema, applied in order at start."""
