-- id: bedrock_custom_model_cmk_usable
-- title: The KMS key of each Bedrock custom or imported model is enabled
-- severity: high
-- description: A custom or imported model is only usable while its KMS key is Enabled. A Disabled,
--   Unavailable or PendingImport key makes the model unusable now; a key PendingDeletion
--   will crypto-shred the model for good when its waiting period ends.
-- remediation: Re-enable the key (kms:EnableKey), cancel a scheduled deletion
--   (kms:CancelKeyDeletion) or restore the external key material. If the key is meant to
--   go, re-create the model with a new CMK first (`bedrock-sql remediate`).
-- references: https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html
--   https://docs.aws.amazon.com/bedrock/latest/userguide/encryption-custom-job.html
--   https://docs.aws.amazon.com/securityhub/latest/userguide/kms-controls.html
--   https://www.iso.org/standard/27001
-- frameworks: nist-800-53-rev5: SC-12, SC-12(2); aws-securityhub: KMS.3; iso-27001-2022: 8.24
--
-- ok     the key is Enabled
-- alarm  the key is Disabled, PendingDeletion, PendingImport, Unavailable, or no longer exists
-- skip   the model uses the Bedrock-owned key (no key of yours to check)
-- info   the key lives in another account, which this scan cannot inspect
-- error  the model's details, its key, or its account/region listing could not be read
SELECT
  e.arn AS resource,
  CASE
    WHEN e.details_error IS NOT NULL THEN 'error'
    WHEN e.key_reference IS NULL THEN 'skip'
    WHEN e.key_state = 'Enabled' THEN 'ok'
    WHEN e.key_state IS NOT NULL THEN 'alarm'
    WHEN e.key_account_id <> e.account_id THEN 'info'
    WHEN e.key_error IS NOT NULL THEN 'error'
    ELSE 'alarm'
  END AS status,
  CASE
    WHEN e.details_error IS NOT NULL THEN
      'The details of ' || e.model_name || ' could not be read (' || e.details_error || '), so its key is unknown.'
    WHEN e.key_reference IS NULL THEN
      e.model_name || ' uses the Bedrock-owned key; there is no key of yours to check.'
    WHEN e.key_state = 'Enabled' THEN
      'Key ' || e.key_title || ' of ' || e.model_name || ' is Enabled.'
    WHEN e.key_state = 'PendingDeletion' THEN
      'Key ' || e.key_title || ' of ' || e.model_name || ' is pending deletion on ' || coalesce(e.key_deletion_date, 'an unknown date')
        -- Counted from the collection, not from when check runs: the finding is dated by it.
        || coalesce(' (' || cast(round(days_between(
             (SELECT max(finished_at) FROM bedrock_sql_runs), e.key_deletion_date)) AS INTEGER)
             || ' days after the snapshot was collected)', '')
        || '; the model will become permanently unusable.'
    WHEN e.key_state IS NOT NULL THEN
      'Key ' || e.key_title || ' of ' || e.model_name || ' is ' || e.key_state || ', so the model cannot be used.'
    WHEN e.key_account_id <> e.account_id THEN
      'Key ' || e.key_reference || ' of ' || e.model_name || ' lives in account ' || e.key_account_id
        || ', which this scan cannot inspect.'
    WHEN e.key_error IS NOT NULL THEN
      'Key ' || e.key_reference || ' of ' || e.model_name || ' could not be read (' || e.key_error || ').'
    ELSE
      'Key ' || e.key_reference || ' of ' || e.model_name || ' no longer exists, so the model cannot be used.'
  END AS reason,
  e.account_id,
  e.region,
  e.model_name,
  e.key_reference AS kms_key_arn,
  e.key_state
FROM bedrock_model_encryption e
WHERE e.table_name IN ('aws_bedrock_custom_model', 'aws_bedrock_imported_model') AND e.owned_by_account

UNION ALL

SELECT account_id || '/' || region, 'error',
       'The ' || kinds || ' models of ' || account_id || '/' || region || ' could not be listed (' || detail || ').',
       account_id, region, NULL, NULL, NULL
FROM bedrock_model_listing_error
