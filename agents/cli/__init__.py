"""The ``agent`` command line. Thin: parse, call a tool or workflow, render."""
