"""The project's named exceptions.

Every error a user can cause derives from :class:`RpsInferError`, so the CLI can
print one line for it and the gRPC layer can map it to a status code in one place.
"""

from __future__ import annotations


class RpsInferError(Exception):
    """Base class of every error rps_infer raises on purpose."""


class FileContentError(RpsInferError):
    """A file is unreadable or does not hold what it should.

    The message names the file, the field (key), what was expected and what was found.
    """

    def __init__(self, path: object, field: str, expected: str, found: str) -> None:
        self.path = str(path)
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(f"{self.path}: field {field!r}: expected {expected}, found {found}")


class ModelFormatError(FileContentError):
    """A model file is unreadable or malformed."""


class InputMismatchError(RpsInferError):
    """Inputs given to a model do not match its input specs (name, dtype or shape)."""


class ParityError(RpsInferError):
    """A converted model does not compute the same function as its source.

    ``result`` holds the full comparison report.
    """

    def __init__(self, message: str, result: object) -> None:
        self.result = result
        super().__init__(f"{message}\n{result}")


class ProviderUnavailableError(RpsInferError):
    """The requested device or execution provider cannot be used on this machine."""


class UnsupportedModelError(RpsInferError):
    """The model or the requested conversion is not supported."""


class InvalidRequestError(RpsInferError):
    """A request is malformed: wrong size, shape, datatype, non-finite values, empty batch."""


class ModelNotFoundError(RpsInferError):
    """A request names a model the server does not serve."""


class ModelNotReadyError(RpsInferError):
    """A served model failed to load or is shutting down."""


class AuthenticationError(RpsInferError):
    """A call without the bearer token the server requires."""


class RequestTooLargeError(RpsInferError):
    """A request body above the server's ``--max-message-mb`` (HTTP 413, gRPC RESOURCE_EXHAUSTED)."""


class RequestTimeoutError(RpsInferError):
    """A client that sent its request's headers or body too slowly (HTTP 408)."""


class RouteNotFoundError(RpsInferError):
    """An HTTP path the v2 REST API does not have (404)."""


class MethodNotAllowedError(RpsInferError):
    """An HTTP method a v2 REST path does not take (405)."""


class ConfigError(FileContentError):
    """A configuration or data file (zoo manifest, sidecar, gate settings, baseline) does not
    match its schema (see :mod:`rps_infer.schemas`)."""


class RevisionError(RpsInferError):
    """A git revision the latency gate needs cannot be found, materialised or run; the
    message says how to fix it."""
