"""The one exception type that means "the user's input is wrong".

The CLI turns it into a one-line message and a non-zero exit; anything else is a bug and
keeps its traceback.
"""


class UserError(ValueError):
    """Bad input (file, topic, field, value): the message names what and why, on one line."""
