-- id: bedrock_custom_model_cmk_policy_not_public
-- title: The key policy of each Bedrock custom or imported model's CMK does not allow everyone
-- severity: high
-- description: A key policy statement that allows every principal ("*" in any form) lets
--   any AWS account use the key, unless a condition ties the caller to known accounts or
--   organizations (kms:CallerAccount, aws:PrincipalAccount, aws:PrincipalOrgID,
--   aws:PrincipalArn, aws:SourceAccount, ...). Conditions such as aws:SecureTransport,
--   aws:SourceIp or kms:ViaService alone do not: the key would no longer limit who can
--   decrypt the model. The analysis is the SQL function policy_public_statements().
-- remediation: Replace the wildcard principal with the account root, the key
--   administrators and the customization or import job's service role, or add a condition that
--   names your accounts or organization (kms:CallerAccount, aws:PrincipalOrgID).
-- references: https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html
--   https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
--   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html
--   https://docs.aws.amazon.com/securityhub/latest/userguide/kms-controls.html
-- frameworks: aws-securityhub: KMS.5
--
-- ok     no statement grants the public
-- alarm  at least one statement does (each named, with why)
-- skip   Bedrock-owned key, or an AWS managed key (its policy is AWS's)
-- info   the key lives in another account, which this scan cannot inspect
-- error  the model, its key or its key policy could not be read, or the policy is not a
--        policy document
SELECT
  e.arn AS resource,
  CASE
    WHEN e.details_error IS NOT NULL THEN 'error'
    WHEN e.key_reference IS NULL THEN 'skip'
    WHEN e.key_manager = 'AWS' THEN 'skip'
    WHEN e.public = 1 THEN 'alarm'
    WHEN e.public = 0 THEN 'ok'
    WHEN NOT e.key_found AND e.key_account_id <> e.account_id THEN 'info'
    ELSE 'error'
  END AS status,
  CASE
    WHEN e.details_error IS NOT NULL THEN
      'The details of ' || e.model_name || ' could not be read (' || e.details_error || '), so its key is unknown.'
    WHEN e.key_reference IS NULL THEN
      e.model_name || ' uses the Bedrock-owned key; there is no key policy of yours to check.'
    WHEN e.key_manager = 'AWS' THEN
      'Key ' || e.key_title || ' of ' || e.model_name || ' is AWS managed; its policy is set by AWS.'
    WHEN e.public = 1 THEN
      'The policy of key ' || e.key_title || ' of ' || e.model_name || ' grants the public: '
        || (SELECT group_concat(s.value ->> 'reason', '; ') FROM json_each(policy_public_statements(e.key_policy)) s)
        || '.'
    WHEN e.public = 0 THEN
      'No statement of the policy of key ' || e.key_title || ' of ' || e.model_name
        || ' allows every principal without a condition naming accounts or organizations.'
    WHEN NOT e.key_found AND e.key_account_id <> e.account_id THEN
      'Key ' || e.key_reference || ' of ' || e.model_name || ' lives in account ' || e.key_account_id
        || ', which this scan cannot inspect.'
    WHEN e.key_policy IS NOT NULL THEN
      'The policy of key ' || e.key_title || ' of ' || e.model_name || ' is not a policy document (no Statement list).'
    ELSE
      'The policy of key ' || coalesce(e.key_title, e.key_reference) || ' of ' || e.model_name || ' could not be read'
        || coalesce(' (' || coalesce(e.key_policy_error, e.key_error) || ')', '') || '.'
  END AS reason,
  e.account_id,
  e.region,
  e.model_name,
  e.key_reference AS kms_key_arn
FROM (SELECT *, policy_is_public(key_policy) AS public FROM bedrock_model_encryption) e
WHERE e.table_name IN ('aws_bedrock_custom_model', 'aws_bedrock_imported_model') AND e.owned_by_account

UNION ALL

SELECT account_id || '/' || region, 'error',
       'The ' || kinds || ' models of ' || account_id || '/' || region || ' could not be listed (' || detail || ').',
       account_id, region, NULL, NULL
FROM bedrock_model_listing_error
