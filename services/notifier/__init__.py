"""The notifier service: turns events an owner should hear of into one message each, in Bahasa Indonesia."""
