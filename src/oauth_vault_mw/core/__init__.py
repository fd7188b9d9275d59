"""The pure core: decisions without I/O (see README.md beside this file)."""
