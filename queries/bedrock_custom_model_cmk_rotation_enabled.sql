-- id: bedrock_custom_model_cmk_rotation_enabled
-- title: Automatic rotation is on for the KMS key of each Bedrock custom or imported model
-- severity: medium
-- description: Automatic key rotation limits how much data one key version protects and
--   is expected by most compliance frameworks for customer-managed keys. It applies to
--   symmetric keys with KMS-generated material only.
-- remediation: Turn on automatic rotation for the key (kms:EnableKeyRotation, optionally
--   with a rotation period).
-- references: https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html
--   https://docs.aws.amazon.com/securityhub/latest/userguide/kms-controls.html
--   https://www.iso.org/standard/27001
-- frameworks: nist-800-53-rev5: SC-12, SC-12(2), SC-28(3); pci-dss-v4.0.1: 3.7.4;
--   cis-aws-foundations-v5.0.0: 3.6; cis-aws-foundations-v3.0.0: 3.6;
--   aws-securityhub: KMS.4; iso-27001-2022: 8.24
--
-- ok     rotation is on
-- alarm  rotation is off
-- skip   Bedrock-owned key; AWS managed key (AWS rotates it); rotation does not apply
--        (imported key material, external or CloudHSM key stores, asymmetric or HMAC keys)
-- info   the key lives in another account, which this scan cannot inspect
-- error  the model, its key or its rotation status could not be read
SELECT
  e.arn AS resource,
  CASE
    WHEN e.details_error IS NOT NULL THEN 'error'
    WHEN e.key_reference IS NULL THEN 'skip'
    WHEN e.key_manager = 'AWS' THEN 'skip'
    WHEN e.key_origin <> 'AWS_KMS' OR e.key_spec <> 'SYMMETRIC_DEFAULT' THEN 'skip'
    WHEN e.key_rotation_error IS NOT NULL THEN 'error'
    WHEN e.key_rotation_enabled = 1 THEN 'ok'
    WHEN e.key_rotation_enabled = 0 THEN 'alarm'
    WHEN NOT e.key_found AND e.key_account_id <> e.account_id THEN 'info'
    WHEN e.key_state = 'PendingDeletion' THEN 'skip'
    ELSE 'error'
  END AS status,
  CASE
    WHEN e.details_error IS NOT NULL THEN
      'The details of ' || e.model_name || ' could not be read (' || e.details_error || '), so its key is unknown.'
    WHEN e.key_reference IS NULL THEN
      e.model_name || ' uses the Bedrock-owned key; there is no key of yours to rotate.'
    WHEN e.key_manager = 'AWS' THEN
      'Key ' || e.key_title || ' of ' || e.model_name || ' is AWS managed; AWS rotates it every year.'
    WHEN e.key_origin <> 'AWS_KMS' OR e.key_spec <> 'SYMMETRIC_DEFAULT' THEN
      'Automatic rotation does not apply to key ' || e.key_title || ' of ' || e.model_name
        || ' (origin ' || e.key_origin || ', spec ' || e.key_spec || ').'
    WHEN e.key_rotation_error IS NOT NULL THEN
      'The rotation status of key ' || e.key_title || ' of ' || e.model_name || ' could not be read ('
        || e.key_rotation_error || ').'
    WHEN e.key_rotation_enabled = 1 THEN
      'Automatic rotation is on for key ' || e.key_title || ' of ' || e.model_name || '.'
    WHEN e.key_rotation_enabled = 0 THEN
      'Automatic rotation is off for key ' || e.key_title || ' of ' || e.model_name || '.'
    WHEN NOT e.key_found AND e.key_account_id <> e.account_id THEN
      'Key ' || e.key_reference || ' of ' || e.model_name || ' lives in account ' || e.key_account_id
        || ', which this scan cannot inspect.'
    WHEN e.key_state = 'PendingDeletion' THEN
      'Key ' || e.key_title || ' of ' || e.model_name || ' is pending deletion; rotation no longer applies.'
    ELSE
      'The rotation status of key ' || coalesce(e.key_title, e.key_reference) || ' of ' || e.model_name
        || ' could not be read' || coalesce(' (' || e.key_error || ')', '') || '.'
  END AS reason,
  e.account_id,
  e.region,
  e.model_name,
  e.key_reference AS kms_key_arn
FROM bedrock_model_encryption e
WHERE e.table_name IN ('aws_bedrock_custom_model', 'aws_bedrock_imported_model') AND e.owned_by_account

UNION ALL

SELECT account_id || '/' || region, 'error',
       'The ' || kinds || ' models of ' || account_id || '/' || region || ' could not be listed (' || detail || ').',
       account_id, region, NULL, NULL
FROM bedrock_model_listing_error
