"""The gdb boundary: the only code that runs gdb. It speaks MI through pygdbmi's
parser and hands out model objects, never MI dicts."""
