"""One module per ``qmra`` subcommand: each has ``add_parser(subparsers)`` and a handler."""
