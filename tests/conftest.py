"""Shared pytest fixtures: fake credentials, moto in process, moto over HTTP."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import boto3
import pytest

from bedrock_sql import simulated_bedrock

# moto has no imported models, import/copy jobs, provisioned throughput or deployments: teach
# its Bedrock before any mock_aws or ThreadedMotoServer answers (see simulated_bedrock).
simulated_bedrock.install()

# Variables that would point boto3 at a real account, profile or endpoint.
_AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "BEDROCK_SQL_DB",
    "BEDROCK_SQL_EXCEPTIONS",  # check and diff would mute findings the tests expect
)


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials; a developer's real AWS config and endpoints are never read."""
    for name in list(os.environ):
        if name in _AWS_ENV_TO_CLEAR or name.startswith("AWS_ENDPOINT_URL_"):
            monkeypatch.delenv(name, raising=False)
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    """A boto3 Session inside ``moto.mock_aws`` (in-process AWS, fresh for each test)."""
    import moto

    with moto.mock_aws():
        yield boto3.Session(region_name="us-east-1")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A ``ThreadedMotoServer`` on a free local port for the whole run; yields its URL.

    It runs in this process, so it shares moto's backends with ``mock_aws`` and with
    :mod:`bedrock_sql.estate`'s nudges. Use ``moto_url`` to get it with fresh state.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset_moto_server(url: str) -> None:
    """Drop every resource in every account and region of the server."""
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture
def moto_url(moto_server: str) -> str:
    """The moto server's URL, with its state reset before the test."""
    reset_moto_server(moto_server)
    return moto_server


@pytest.fixture
def server_session(moto_url: str) -> boto3.Session:
    """A boto3 Session for the moto server: pass ``endpoint_url=moto_url`` to its clients."""
    return boto3.Session(region_name="us-east-1")


# --- the quick subset: ``pytest -m quick`` ---------------------------------------------------
# A curated list of fast unit tests (no subprocess-heavy end-to-end run, no Chromium) that
# together touch every module of src/bedrock_sql: a newcomer's first run, in under a minute.
# Listed here, by test file and test function name (every parametrization of a listed function
# is quick), so that no test file needs editing to join or leave the subset.
# tests/test_quick_subset.py fails if a listed test no longer exists, or if a module of
# src/bedrock_sql is no longer imported by (or mapped to) some quick test.
QUICK_TESTS: dict[str, tuple[str, ...]] = {
    "test_accounts.py": ("test_role_session_name_is_valid", "test_two_accounts_through_assume_role_rows_attributed",
                         "test_accounts_file"),
    "test_check_cli.py": ("test_exit_0_when_everything_passes", "test_exit_1_with_an_alarm",
                          "test_exit_2_with_an_error_even_with_alarms", "test_csv_output_is_data_only_and_the_summary_goes_to_stderr"),
    "test_cli_errors.py": ("test_bad_sql", "test_second_statement_is_refused_not_dropped", "test_query_on_a_missing_snapshot"),
    "test_controls.py": ("test_the_bundled_controls_and_their_headers", "test_seed_rule_ok_alarm_info",
                         "test_usable_every_status", "test_rotation_every_status"),
    "test_diff.py": ("test_control_change", "test_inventory_change", "test_listed_in_names_the_table_of_an_arn",
                     "test_diff_names_what_was_fixed_and_what_regressed"),
    "test_docs.py": ("test_table_reference_is_generated_from_the_providers", "test_heading_anchors_follow_github"),
    "test_engine.py": ("test_every_item_is_hydrated_once_and_streamed", "test_one_failing_unit_is_recorded_and_the_others_answer",
                       "test_a_key_must_name_columns"),
    "test_estate.py": ("test_create_key_states", "test_seed_models_bedrock_owned_and_case_from_key"),
    "test_exceptions.py": ("test_without_exceptions_both_models_alarm", "test_each_key_narrows_what_is_muted"),
    "test_file_safety.py": ("test_demo_replaces_only_its_own_snapshots",),
    "test_findings.py": ("test_asff_required_fields_for_every_status_and_severity", "test_asff_ids_are_stable_and_distinct",
                         "test_ocsf_compliance_findings_for_every_status_and_severity"),
    "test_frameworks.py": ("test_every_bundled_control_maps_to_known_frameworks_only",
                           "test_a_header_spans_lines_keys_ignore_case_and_ids_are_kept_once"),
    "test_gc_tuning.py": ("test_applied_inside_and_restored_after", "test_restored_when_the_body_fails"),
    "test_html_report.py": ("test_values_cannot_close_the_data_script",),
    "test_identifiers.py": ("test_valid_identifiers", "test_invalid_identifiers", "test_a_clean_snapshot_passes",
                            "test_an_altered_row_is_refused_by_name"),
    "test_inert_text.py": ("test_collect_summary_and_aws_failures_are_inert",),
    "test_kms_need.py": ("test_every_key_column_of_a_provider_is_a_key_reference",),
    "test_new_tables.py": ("test_simulation_rejects_what_bedrock_rejects",),
    "test_packaging.py": ("test_every_package_under_src_is_in_the_wheel",),
    "test_policy.py": ("test_canonical_is_steampipes_policy_std", "test_malformed_policy_raises_policy_error",
                       "test_wildcard_principal_without_condition_is_public", "test_multiple_statements_report_their_own_index_and_sid"),
    "test_providers.py": ("test_table_names_are_the_designed_ones", "test_every_designed_column_exists_with_its_type",
                          "test_to_sql_conversions"),
    "test_remediate.py": ("test_plan_targets_only_failing_models", "test_create_key_policy_has_four_statements_with_the_right_principals",
                          "test_plan_copies_every_field_of_the_source_job_plus_the_cmk"),
    "test_remediate_hostile.py": ("test_a_command_shown_in_a_comment_stays_one_comment_line",
                                  "test_what_bash_cannot_hold_is_refused_never_changed"),
    "test_render.py": ("test_csv_round_trip", "test_json_round_trip", "test_markdown_escapes_pipes_and_newlines",
                       "test_neutralize_every_trigger"),
    "test_responses.py": ("test_a_good_sts_answer_passes", "test_a_page_that_says_truncated_must_name_the_next"),
    "test_retries.py": ("test_a_throttle_that_clears_is_invisible",),
    "test_safe_files.py": ("test_writes_a_new_file_with_the_mode_whatever_the_umask",
                           "test_replace_renames_over_a_planted_symlink_and_leaves_its_target",
                           "test_without_replace_an_existing_name_is_an_error"),
    "test_securityhub.py": ("test_a_finding_without_account_or_region_is_a_failure_not_a_crash",),
    "test_serve.py": ("test_the_hosts_serve_answers", "test_the_host_guard_in_process"),
    "test_shard_merge.py": ("test_shard_assignment_is_stable_and_covers_every_account_once",
                            "test_shard_notes_are_read_as_collect_writes_them"),
    "test_shell.py": ("test_every_apsw_command_is_judged", "test_a_command_nobody_judged_is_refused_not_inherited"),
    "test_quick_subset.py": ("test_every_listed_quick_test_exists", "test_every_indirect_module_names_a_listed_quick_test",
                             "test_every_source_module_is_covered_by_a_quick_test", "test_the_quick_marker_is_applied"),
    "test_snapshot.py": ("test_missing_and_corrupt_snapshots_are_user_errors",),
    "test_sql_functions.py": ("test_now_is_in_the_stored_format", "test_policy_functions", "test_snapshot_connections_have_them"),
    "test_sql_limits.py": ("test_sql_cannot_lift_the_limits", "test_the_heap_limit_is_only_ever_lowered"),
    "test_views.py": ("test_a_customer_managed_key_in_every_form_is_ok", "test_imported_model_control_every_verdict"),
}


def is_quick(item: pytest.Item) -> bool:
    """Whether a collected test is one of QUICK_TESTS (by its file and function name)."""
    name = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
    return name in QUICK_TESTS.get(item.path.name, ())


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if is_quick(item):
            item.add_marker(pytest.mark.quick)
