"""boto3 clients from the standard AWS chain, and AWS errors as one clear line.

Credentials, profile and endpoint are boto3's own (AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws,
AWS_ENDPOINT_URL, ...); only the region may come from our config. No key is ever read,
printed or stored here: error lines carry AWS's error code and message, which name no secret.
boto3 is imported inside these functions so ``plan`` never loads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from levcustom.errors import ProviderError

T = TypeVar("T")

# Error codes meaning "who you are" is wrong, as opposed to "what you asked" is wrong.
_AUTH_CODES = {"UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", "ExpiredToken",
               "ExpiredTokenException", "SignatureDoesNotMatch", "AuthFailure"}
_NOT_FOUND = {"ResourceNotFoundException", "NoSuchKey", "404", "NotFound"}


class AwsClients:
    """One boto3 client per (service, region), shared by threads (boto3 clients are thread-safe)."""

    def __init__(self, vendor: str):
        self.vendor = vendor
        self._clients: dict[tuple[str, str | None, int], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str | None, max_retries: int):
        key = (service, region, max_retries)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._new(service, region, max_retries)
            return self._clients[key]

    def _new(self, service: str, region: str | None, max_retries: int):
        import boto3
        import botocore.config
        import botocore.exceptions

        config = botocore.config.Config(retries={"mode": "standard", "max_attempts": max_retries + 1},
                                        user_agent_extra="levcustom")
        try:
            return boto3.session.Session().client(service, region_name=region, config=config)
        except botocore.exceptions.NoRegionError:
            raise ProviderError(f"{self.vendor}: no AWS region: set provider.region or AWS_REGION") from None
        except botocore.exceptions.ProfileNotFound as exc:
            raise ProviderError(f"{self.vendor}: {exc}") from None

    def call(self, what: str, fn: Callable[[], T], *, missing_ok: bool = False) -> T | None:
        """Run a boto3 call (botocore already retried throttling and 5xx); map failures to one line.
        With ``missing_ok``, a resource that does not exist is None instead of an error."""
        import botocore.exceptions

        try:
            return fn()
        except botocore.exceptions.NoCredentialsError:
            raise ProviderError(f"{self.vendor}: {what} failed: no AWS credentials found (set AWS_PROFILE or "
                                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or sign in with aws sso login)") from None
        except botocore.exceptions.ClientError as exc:
            code, message = error_code(exc), exc.response.get("Error", {}).get("Message", "")
            if missing_ok and code in _NOT_FOUND:
                return None
            hint = " (check the AWS credentials and region)" if code in _AUTH_CODES else ""
            raise ProviderError(f"{self.vendor}: {what} failed: {code}: {message}{hint}") from None
        except botocore.exceptions.EndpointConnectionError as exc:
            url = urlsplit(str(exc.kwargs.get("endpoint_url", "")))
            raise ProviderError(f"{self.vendor}: {what} failed: cannot reach {url.scheme}://{url.netloc} "
                                "(check the region and network)") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise ProviderError(f"{self.vendor}: {what} failed: {exc}") from None


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    """Tags as Bedrock takes them."""
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]
