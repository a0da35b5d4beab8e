"""Readers for the host: kernel settings, process limits, systemd, disk space."""
