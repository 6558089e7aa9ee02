"""The ``econsim`` command line."""
