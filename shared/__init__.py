"""Contracts, messaging and platform code that every Berdaya service shares; services import nothing else from each other."""
