"""Command-line interface: ``lociseg <command> --help``."""
