"""The redaction every log record passes, whatever logger wrote it."""

import logging

from keycloak_monitor.logs import RedactingFilter


def test_a_record_with_a_token_password_or_last_applied_annotation_is_redacted() -> None:
    cases = {
        "token answer %s": ('{"access_token":"eyJhbGciOi.eyJzdWIi.c2ln","refresh_token":"r3fr3sh"}',),
        "form %s": ("grant_type=password&username=u&password=hunter2&client_secret=s3cr3t",),
        "headers %s": ("Authorization: Bearer abc.def.ghi",),
        "body %s": ('{\'kubectl.kubernetes.io/last-applied-configuration\': \'{"stringData":{"x":"y"}}\'}',),
    }
    for message, args in cases.items():
        record = logging.LogRecord("kopf", logging.DEBUG, __file__, 1, message, args, None)
        RedactingFilter().filter(record)
        text = record.getMessage()
        for secret in ("eyJhbGciOi", "r3fr3sh", "hunter2", "s3cr3t", "abc.def.ghi", "stringData"):
            assert secret not in text, text
