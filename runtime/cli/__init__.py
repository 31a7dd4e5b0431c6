"""The ``nextword`` command line: one module per command, each a thin layer over the library.

    nextword predict models/default/model.int8.tflite "hello how is"

``main`` dispatches (``nextword.cli.main``); the commands of the other stages live beside them
(``nextword.train.cli``, ``nextword.export.cli``). The library never imports this package.
"""

from nextword.cli.main import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, SUBCOMMANDS, build_parser, main

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "SUBCOMMANDS", "build_parser", "main"]
