"""The one exception the library raises for a mistake in what the user asked for."""


class UserError(Exception):
    """A mistake in what the user asked for (bad file, bad flag, bad value); shown as one line."""
