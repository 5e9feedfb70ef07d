"""What a botocore ``ClientError`` means, named once for every room that talks to AWS."""

from __future__ import annotations

from botocore.exceptions import ClientError

# S3 says "not there" in several ways: GetObject's NoSuchKey, HeadObject/HeadBucket's bare 404 or
# NotFound (a HEAD response has no body to carry a code), NoSuchBucket for a missing bucket.
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})


def error_code(error: ClientError) -> str:
    """The service's error code ('' when the response carries none)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def is_missing(error: ClientError) -> bool:
    """True when S3 answered that the bucket or key does not exist."""
    return error_code(error) in NOT_FOUND_CODES
