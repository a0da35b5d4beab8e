"""Readers for nginx: its configuration (``config``) and, for setup, its text (``text``).

Everything here talks to the outside (files, the nginx binary) and returns
plain frozen dataclasses; nothing above this package sees a crossplane dict.
"""
