"""`python -m app`: the `shop` command, for processes started without the console script
(the pipeline's child process of `shop serve`)."""

from app.cli import main

main()
