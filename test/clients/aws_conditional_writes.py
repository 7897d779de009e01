"""aws-cli plugin for the tests: conditional-write headers on PutObject.

Debian's aws-cli 2.9 predates S3's conditional writes (its put-object has no --if-none-match /
--if-match). Loaded through the config's [plugins] section (cli_legacy_plugin_path pointing at
this directory), it adds If-None-Match / If-Match from the environment variables
AWS_TEST_IF_NONE_MATCH / AWS_TEST_IF_MATCH to every PutObject before it is signed, which is
what a newer aws-cli's `s3api put-object --if-none-match '*'` sends. The answer is the CLI's own
handling (exit code, "An error occurred (PreconditionFailed) ...").
"""
import os

_HEADERS = (("AWS_TEST_IF_NONE_MATCH", "If-None-Match"), ("AWS_TEST_IF_MATCH", "If-Match"))


def _add_headers(request, **kwargs):
    for env, name in _HEADERS:
        value = os.environ.get(env)
        if value is not None:
            request.headers[name] = value


def awscli_initialize(cli):
    cli.register("before-sign.s3.PutObject", _add_headers)
