-- id: bedrock_custom_model_cmk_policy_not_public
-- title: The key policy of each Bedrock custom model's CMK does not allow everyone
-- severity: high
-- description: A key policy statement that allows a wildcard principal ("*") without a
--   condition lets any AWS principal use the key, so the key no longer limits who can
--   decrypt the model.
-- remediation: Replace the wildcard principal with the account root, the key
--   administrators and the customization job's service role, or add conditions
--   (aws:PrincipalAccount, kms:CallerAccount, kms:ViaService) that narrow it.
-- references: https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html
--   https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
--
-- ok     no Allow statement with a wildcard principal and no condition
-- alarm  at least one such statement (their Sids are named)
-- skip   Bedrock-owned key, or an AWS managed key (its policy is AWS's)
-- info   the key lives in another account, which this scan cannot inspect
-- error  the model, its key or its key policy could not be read
WITH
statements AS (  -- every statement of every key policy (Statement may be one object or a list)
  SELECT k.arn AS key_arn, s.value AS statement
  FROM aws_kms_key k,
       json_each(CASE json_type(k.policy, '$.Statement')
                   WHEN 'array' THEN json_extract(k.policy, '$.Statement')
                   ELSE json_array(json(json_extract(k.policy, '$.Statement'))) END) s
  WHERE k.policy IS NOT NULL
),
public_statements AS (
  SELECT key_arn, group_concat(coalesce(json_extract(statement, '$.Sid'), '(no Sid)'), ', ') AS sids
  FROM statements
  WHERE json_extract(statement, '$.Effect') = 'Allow'
    AND coalesce(json_extract(statement, '$.Condition'), '{}') = '{}'
    AND (json_extract(statement, '$.Principal') = '*'
         OR EXISTS (SELECT 1 FROM json_each(statement, '$.Principal.AWS') p WHERE p.value = '*'))
  GROUP BY key_arn
)
SELECT
  e.arn AS resource,
  CASE
    WHEN e.details_error IS NOT NULL THEN 'error'
    WHEN e.key_reference IS NULL THEN 'skip'
    WHEN e.key_manager = 'AWS' THEN 'skip'
    WHEN p.key_arn IS NOT NULL THEN 'alarm'
    WHEN e.key_policy IS NOT NULL THEN 'ok'
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
    WHEN p.key_arn IS NOT NULL THEN
      'The policy of key ' || e.key_title || ' of ' || e.model_name
        || ' allows any principal without a condition (statement ' || p.sids || ').'
    WHEN e.key_policy IS NOT NULL THEN
      'The policy of key ' || e.key_title || ' of ' || e.model_name || ' allows no wildcard principal without a condition.'
    WHEN NOT e.key_found AND e.key_account_id <> e.account_id THEN
      'Key ' || e.key_reference || ' of ' || e.model_name || ' lives in account ' || e.key_account_id
        || ', which this scan cannot inspect.'
    ELSE
      'The policy of key ' || coalesce(e.key_title, e.key_reference) || ' of ' || e.model_name || ' could not be read.'
  END AS reason,
  e.account_id,
  e.region,
  e.model_name,
  e.key_reference AS kms_key_arn
FROM bedrock_model_encryption e
LEFT JOIN public_statements p ON p.key_arn = e.key_arn AND e.key_found
WHERE e.table_name = 'aws_bedrock_custom_model' AND e.owned_by_account

UNION ALL

SELECT account_id || '/' || region, 'error',
       'The custom models of ' || account_id || '/' || region || ' could not be listed (' || detail || ').',
       account_id, region, NULL, NULL
FROM bedrock_listing_error
WHERE table_name = 'aws_bedrock_custom_model'
