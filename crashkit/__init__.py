"""crashkit: core-dump and crash forensics for Linux hosts, nginx first."""

__version__ = "0.1.0"
