"""The one error a wire codec raises: the bytes in front of it are not what they claim to be."""


class ParseError(ValueError):
    """Malformed input. The message names the field and the problem; it never carries key material."""
