"""Turning botocore/s3transfer exceptions into one-sentence causes and deciding which ones are transient.

A user who sees "An error occurred (403) when calling the HeadObject operation: Forbidden" has to guess
whether the key is wrong, the bucket policy denies them or their token expired. `describe_failure` names
the cause in words; `storage_error` wraps it in a `StorageError` that names the URI and what we were
doing, with credentials scrubbed. `is_transient` is the single rule the retry layer uses.
"""

from __future__ import annotations

from boto3.exceptions import RetriesExceededError as Boto3RetriesExceededError
from boto3.exceptions import S3UploadFailedError
from botocore import exceptions as boto_exc
from s3transfer.exceptions import RetriesExceededError

from skillkit.errors import StorageError
from skillkit.redaction import redact

# Error codes S3 and S3-compatible stores use for throttling and server-side hiccups.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "500",
        "502",
        "503",
        "504",
    }
)
TRANSIENT_HTTP_STATUS = frozenset({429, 500, 502, 503, 504})

# Network-level failures worth another attempt: the connection dropped, timed out or the stream broke.
_TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    boto_exc.ConnectionError,  # EndpointConnectionError, connect timeouts, proxy errors
    boto_exc.HTTPClientError,  # ConnectionClosedError, ReadTimeoutError, ResponseStreamingError
    boto_exc.IncompleteReadError,
    RetriesExceededError,
    ConnectionError,
    TimeoutError,
)

_NO_CREDENTIALS = (
    "no AWS credentials were found (looked for AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and "
    "~/.aws/credentials, ~/.aws/config, web identity, container and instance roles); set one of them"
)


def unwrap(error: BaseException) -> BaseException:
    """The underlying botocore error of boto3's managed-transfer wrappers.

    `upload_file` re-raises a `ClientError` as `S3UploadFailedError` (keeping it only as `__context__`),
    and `download_file` wraps the last failure in `RetriesExceededError`; the real cause decides whether
    to retry and how to word the message.
    """
    while True:
        if isinstance(error, S3UploadFailedError) and error.__context__ is not None:
            error = error.__context__
        elif isinstance(error, (Boto3RetriesExceededError, RetriesExceededError)) and getattr(
            error, "last_exception", None
        ) is not None:
            error = error.last_exception
        else:
            return error


def error_code(error: BaseException) -> str:
    """The S3 error code of a `ClientError` (e.g. 'NoSuchKey', '404'), '' for anything else."""
    if isinstance(error, boto_exc.ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a `ClientError`, None for anything else."""
    if isinstance(error, boto_exc.ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def is_transient(error: BaseException) -> bool:
    """True when trying the same request again may succeed (throttling, 5xx, dropped connections)."""
    if isinstance(error, boto_exc.ClientError):
        return error_code(error) in TRANSIENT_ERROR_CODES or http_status(error) in TRANSIENT_HTTP_STATUS
    return isinstance(error, _TRANSIENT_EXCEPTIONS)


def is_not_found(error: BaseException) -> bool:
    """True for 'no such key' in any of the spellings S3 uses (HEAD answers a bare 404)."""
    code = error_code(error)
    if code == "NoSuchBucket":
        return False
    return code in {"NoSuchKey", "404", "NotFound"} or http_status(error) == 404


def describe_failure(error: BaseException) -> str:
    """One sentence naming why an S3 request failed, without credentials."""
    code = error_code(error)
    status = http_status(error)
    if isinstance(error, (boto_exc.NoCredentialsError, boto_exc.PartialCredentialsError)):
        return _NO_CREDENTIALS
    if isinstance(error, boto_exc.ClientError):
        message = str(error.response.get("Error", {}).get("Message", "") or "")
        if code == "NoSuchBucket":
            return "the bucket does not exist"
        if code in {"NoSuchKey", "404", "NotFound"}:
            return "the object does not exist"
        if code in {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"}:
            return "access denied: the credentials in use are not allowed to do this (check the IAM policy and the bucket policy)"
        if code == "InvalidAccessKeyId":
            return "the access key ID is not known to this S3 endpoint (wrong account or wrong endpoint)"
        if code == "SignatureDoesNotMatch":
            return "the secret access key does not match the access key ID"
        if code in {"ExpiredToken", "TokenRefreshRequired", "ExpiredTokenException"}:
            return "the session token has expired; refresh the credentials"
        if code == "InvalidBucketName":
            return "the bucket name is not valid"
        if code == "PreconditionFailed":
            return "the object changed while it was being read"
        if is_transient(error):
            detail = f"{code}: {message}" if message and message != code else code
            return f"the server failed temporarily (HTTP {status}, {detail})"
        detail = f" ({message})" if message else ""
        return f"the server refused the request with HTTP {status} {code}{detail}"
    if isinstance(error, boto_exc.EndpointConnectionError):
        return f"cannot connect to the S3 endpoint ({error})"
    if isinstance(error, RetriesExceededError):
        return f"the download kept failing ({error.last_exception})"
    if isinstance(error, _TRANSIENT_EXCEPTIONS):
        return f"the connection failed ({type(error).__name__}: {error})"
    if isinstance(error, boto_exc.BotoCoreError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}"


def storage_error(uri: str, action: str, error: BaseException, *, attempts: int = 1) -> StorageError:
    """A `StorageError` saying what we tried (`action`, e.g. 'download') on which URI and why it failed."""
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    reason = describe_failure(error)
    failure = StorageError(redact(f"cannot {action} {uri}{tried}: {reason}."))
    failure.reason = redact(reason)  # type: ignore[attr-defined]  # lets callers say a shared cause once
    return failure
