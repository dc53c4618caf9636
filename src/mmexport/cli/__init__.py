"""The ``mmexport`` command line: parse arguments, call the library, render the result."""

from mmexport.cli.app import main

__all__ = ["main"]
