-- id: bedrock_custom_model_encrypted_with_cmk
-- title: Bedrock custom models are encrypted with a KMS customer-managed key
-- severity: high
-- description: A custom model encrypted with the Bedrock-owned key, or with an AWS managed
--   key, is protected by a key you cannot disable, revoke, rotate on your schedule or audit
--   in your own CloudTrail. Compliance regimes require a customer-managed key (CMK).
-- remediation: The key of an existing model cannot be changed. Create a symmetric KMS
--   customer-managed key whose key policy lets the customization job's service role use
--   it, re-run the model customization job with the same configuration plus
--   customModelKmsKeyId, move provisioned throughput to the new model, then delete the old
--   one. `bedrock-sql remediate` writes this plan.
-- references: https://docs.aws.amazon.com/bedrock/latest/userguide/encryption-custom-job.html
--   https://docs.aws.amazon.com/bedrock/latest/APIReference/API_CreateModelCustomizationJob.html
--   https://docs.aws.amazon.com/securityhub/latest/userguide/bedrockagentcore-controls.html
--   https://www.iso.org/standard/27001
--   https://www.aicpa-cima.com/resources/download/2017-trust-services-criteria-with-revised-points-of-focus-2022
-- frameworks: nist-800-53-rev5: SC-12(2), SC-13, SC-28, SC-28(1);
--   iso-27001-2022: 8.24; soc2-tsc-2017: CC6.1
--
-- ok     the model's key is a customer-managed key (key_manager CUSTOMER)
-- alarm  no key (Bedrock-owned key), or an AWS managed key
-- info   the key lives in another account, which this scan cannot inspect
-- error  the model's details, its key, or its account/region listing could not be read
-- Every row carries in_use (1 when a provisioned throughput or a custom model deployment
-- serves the model; NULL when their listing failed, so it is unknown) and served_by (their
-- ARNs, a JSON array); an alarm's reason names them, or says that it cannot know.
SELECT * FROM (
SELECT
  e.arn AS resource,
  CASE
    WHEN e.details_error IS NOT NULL THEN 'error'
    WHEN e.key_reference IS NULL THEN 'alarm'
    WHEN e.key_manager = 'CUSTOMER' THEN 'ok'
    WHEN e.key_manager = 'AWS' THEN 'alarm'
    WHEN e.key_account_id <> e.account_id THEN 'info'
    ELSE 'error'
  END AS status,
  CASE
    WHEN e.details_error IS NOT NULL THEN
      'The details of ' || e.model_name || ' could not be read (' || e.details_error || '), so its key is unknown.'
    WHEN e.key_reference IS NULL THEN
      e.model_name || ' is encrypted with the Bedrock-owned key, not a customer-managed key'
        || CASE WHEN e.in_use THEN '; it is in use by ' || (SELECT group_concat(value, ', ') FROM json_each(e.served_by))
                WHEN e.in_use IS NULL THEN '; whether it is in use is unknown (' || e.serving_error || ')'
                ELSE '' END || '.'
    WHEN e.key_manager = 'CUSTOMER' THEN
      e.model_name || ' is encrypted with customer-managed key ' || e.key_title || ' (' || e.key_arn || ').'
    WHEN e.key_manager = 'AWS' THEN
      e.model_name || ' is encrypted with AWS managed key ' || e.key_title || ', not a customer-managed key'
        || CASE WHEN e.in_use THEN '; it is in use by ' || (SELECT group_concat(value, ', ') FROM json_each(e.served_by))
                WHEN e.in_use IS NULL THEN '; whether it is in use is unknown (' || e.serving_error || ')'
                ELSE '' END || '.'
    WHEN e.key_account_id <> e.account_id THEN
      e.model_name || ' is encrypted with key ' || e.key_reference || ' in account ' || e.key_account_id
        || ', which this scan cannot inspect.'
    WHEN e.key_listing_error IS NOT NULL THEN
      'The keys of ' || e.key_account_id || '/' || e.key_region || ' could not be listed (' || e.key_listing_error
        || '), so the key of ' || e.model_name || ' is unknown.'
    WHEN e.alias_listing_error IS NOT NULL THEN
      'The aliases of ' || e.key_account_id || '/' || e.key_region || ' could not be listed (' || e.alias_listing_error
        || '), so the key of ' || e.model_name || ' (' || e.key_reference || ') is unknown.'
    WHEN e.key_arn IS NULL THEN
      e.model_name || ' names alias ' || e.key_reference
        || ', which points at no key this scan found; whether it is customer-managed is unknown.'
    ELSE
      e.model_name || ' names key ' || e.key_reference
        || ', which could not be found or described; whether it is customer-managed is unknown.'
  END AS reason,
  e.account_id,
  e.region,
  e.model_name,
  e.key_reference AS kms_key_arn,
  e.key_manager,
  e.in_use,
  e.served_by
FROM bedrock_model_encryption e
WHERE e.table_name = 'aws_bedrock_custom_model' AND e.owned_by_account

UNION ALL

-- Account/regions whose custom models could not be listed: never a silent pass.
SELECT account_id || '/' || region, 'error',
       'The custom models of ' || account_id || '/' || region || ' could not be listed (' || detail || ').',
       account_id, region, NULL, NULL, NULL, 0, '[]'
FROM bedrock_listing_error
WHERE table_name = 'aws_bedrock_custom_model'
)
-- Worst first, and among alarms the models in use first: they are the ones to fix first.
ORDER BY CASE status WHEN 'error' THEN 0 WHEN 'alarm' THEN 1 WHEN 'info' THEN 2 WHEN 'skip' THEN 3 ELSE 4 END,
         coalesce(in_use, 1) DESC, resource
