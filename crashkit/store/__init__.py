"""The crash store: its index (readers); its files are written by crashkit.writers.store."""
