"""Misconfiguration fails at start-up with a sentence that names the fix."""

import os
import secrets
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from conversations.checks import (
    check_deploy_through_the_opt_in_middleware,
    check_file_settings,
    check_llm_settings,
    check_security_middleware,
)


def ids(errors) -> list[str]:
    return [error.id for error in errors]


def test_defaults_pass():
    assert check_llm_settings(None) == []


def test_unknown_provider(settings):
    settings.LLM_PROVIDER = "gpt-magic"
    errors = check_llm_settings(None)
    assert ids(errors) == ["conversations.E001"] and "demo, openai" in errors[0].hint


def test_bad_base_url_for_openai(settings):
    settings.LLM_PROVIDER, settings.LLM_BASE_URL = "openai", "localhost:8000"
    assert ids(check_llm_settings(None)) == ["conversations.E002"]


def test_non_positive_timeouts_and_limits(settings):
    settings.LLM_IDLE_TIMEOUT, settings.CHATSTREAM_MAX_BODY_BYTES = 0, -1
    assert ids(check_llm_settings(None)) == ["conversations.E004", "conversations.E005"]


def test_manage_check_fails_on_misconfiguration(settings, db):
    settings.LLM_PROVIDER = "nope"
    try:
        call_command("check")
    except SystemCheckError as exc:
        assert "conversations.E001" in str(exc)
    else:
        raise AssertionError("check passed with a bad LLM_PROVIDER")


def test_inline_csrf_middleware_refuses_session_tokens(settings):
    settings.CSRF_USE_SESSIONS = True
    settings.MIDDLEWARE = ["django.middleware.csrf.CsrfViewMiddleware"]
    assert check_llm_settings(None) == []  # the stock one loads the session itself
    settings.MIDDLEWARE = ["conversations.middleware.Csrf"]
    assert ids(check_llm_settings(None)) == ["conversations.E006"]


def test_redis_url_must_be_a_redis_url(settings):
    settings.REDIS_URL = "127.0.0.1:6379"
    errors = check_llm_settings(None)
    assert ids(errors) == ["conversations.E008"] and "redis://" in errors[0].hint
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert check_llm_settings(None) == []


def test_while_answering_must_be_a_choice(settings):
    settings.CHATSTREAM_WHILE_ANSWERING = "later"
    errors = check_llm_settings(None)
    assert ids(errors) == ["conversations.E024"] and '"queue"' not in errors[0].hint and "queue" in errors[0].hint


def test_check_deploy_is_clean_with_production_settings():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatstream.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "chat.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_our_security_middleware_stands_in_for_the_stock_one(settings):
    settings.MIDDLEWARE = ["conversations.middleware.Security", "conversations.middleware.XFrameOptions"]
    errors = check_security_middleware(None)
    assert ids(errors) == ["conversations.W001"] and "CsrfViewMiddleware" in errors[0].msg
    settings.MIDDLEWARE.append("conversations.middleware.Csrf")
    assert check_security_middleware(None) == []


def test_deploy_checks_see_through_the_opt_in_middleware(settings):
    """Django's HTTPS and cookie checks look for the stock names; on the
    opt-in middleware they used to pass without looking."""
    settings.MIDDLEWARE = ["conversations.middleware.Security", "conversations.middleware.Session"]
    settings.SECURE_HSTS_SECONDS, settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE = 0, False, False
    found = ids(check_deploy_through_the_opt_in_middleware(None))
    assert {"security.W004", "security.W008", "security.W012"} <= set(found)
    settings.SECURE_HSTS_SECONDS, settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE = 3600, True, True
    assert not {"security.W004", "security.W008", "security.W012"} & set(
        ids(check_deploy_through_the_opt_in_middleware(None))
    )


def test_on_the_stock_middleware_djangos_own_checks_apply(settings):
    settings.MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
    assert check_security_middleware(None) == []  # security.W001-W003 say it, once


@pytest.mark.parametrize(
    "prices",
    [{"m": {"input": 1}}, {"m": {"input": "x", "output": 1}}, {"m": 3}, ["m"]],
)
def test_a_bad_price_table_fails_at_start_up(settings, prices):
    settings.LLM_PRICES = prices
    assert "conversations.E009" in {error.id for error in check_llm_settings(None)}


def test_a_budget_must_be_an_amount(settings):
    settings.CHATSTREAM_DAILY_BUDGET = "five"
    assert "conversations.E010" in {error.id for error in check_llm_settings(None)}
    settings.CHATSTREAM_DAILY_BUDGET = "5.50"
    assert "conversations.E010" not in {error.id for error in check_llm_settings(None)}


def test_file_settings(settings):
    assert check_file_settings(None) == []
    settings.CHATSTREAM_FILE_URLS, settings.CHATSTREAM_UPLOAD_TTL_HOURS = "s3", -1
    assert ids(check_file_settings(None)) == ["conversations.E004", "conversations.E023"]
    settings.CHATSTREAM_MAX_FILE_BYTES, settings.CHATSTREAM_PDF_TIMEOUT_SECONDS = 0, 0
    assert ids(check_llm_settings(None)) == ["conversations.E004", "conversations.E005"]


def test_uploads_into_the_working_directory_are_warned_of(settings):
    settings.MEDIA_ROOT = ""
    assert ids(check_file_settings(None)) == ["conversations.W002"]
    settings.STORAGES = {**settings.STORAGES, "chatstream": {"BACKEND": "storages.backends.s3.S3Storage"}}
    assert check_file_settings(None) == []
