"""Exceptions a user can cause; each message says what was wrong and what to do."""


class SieveNetError(Exception):
    """Base class for every error SieveNet raises on purpose."""


class WeightsError(SieveNetError):
    """A weights release is missing, tampered with, truncated or does not match its config."""


class DataError(SieveNetError):
    """A dataset file is missing or malformed; the message names the file."""


class TryOnError(SieveNetError):
    """A try-on input (photo, garment, keypoints) cannot be used; the message says why and what to do."""
