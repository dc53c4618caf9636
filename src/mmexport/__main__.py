"""``python -m mmexport``: the same as the ``mmexport`` command."""

from mmexport.cli import main

main()
