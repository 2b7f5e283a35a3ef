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
model_errors AS (
  SELECT resource, min(operation || ' failed with ' || error_code) AS cause
  FROM bedrock_sql_errors
  WHERE table_name = 'aws_bedrock_custom_model' AND resource IS NOT NULL
    AND operation <> 'ListTagsForResource'  -- lost tags, not the details the verdict needs
  GROUP BY resource
),
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
),
models AS (
  SELECT m.*,
         json_extract('["' || replace(m.model_kms_key_arn, ':', '","') || '"]', '$[4]') AS key_account
  FROM aws_bedrock_custom_model m
  WHERE m.owner_account_id IS NULL OR m.owner_account_id = m.account_id
)
SELECT
  m.arn AS resource,
  CASE
    WHEN me.resource IS NOT NULL THEN 'error'
    WHEN m.model_kms_key_arn IS NULL THEN 'skip'
    WHEN k.key_manager = 'AWS' THEN 'skip'
    WHEN p.key_arn IS NOT NULL THEN 'alarm'
    WHEN k.policy IS NOT NULL THEN 'ok'
    WHEN k.arn IS NULL AND m.key_account <> m.account_id THEN 'info'
    ELSE 'error'
  END AS status,
  CASE
    WHEN me.resource IS NOT NULL THEN
      'The details of ' || m.model_name || ' could not be read (' || me.cause || '), so its key is unknown.'
    WHEN m.model_kms_key_arn IS NULL THEN
      m.model_name || ' uses the Bedrock-owned key; there is no key policy of yours to check.'
    WHEN k.key_manager = 'AWS' THEN
      'Key ' || k.title || ' of ' || m.model_name || ' is AWS managed; its policy is set by AWS.'
    WHEN p.key_arn IS NOT NULL THEN
      'The policy of key ' || k.title || ' of ' || m.model_name
        || ' allows any principal without a condition (statement ' || p.sids || ').'
    WHEN k.policy IS NOT NULL THEN
      'The policy of key ' || k.title || ' of ' || m.model_name || ' allows no wildcard principal without a condition.'
    WHEN k.arn IS NULL AND m.key_account <> m.account_id THEN
      'Key ' || m.model_kms_key_arn || ' of ' || m.model_name || ' lives in account ' || m.key_account
        || ', which this scan cannot inspect.'
    ELSE
      'The policy of key ' || coalesce(k.title, m.model_kms_key_arn) || ' of ' || m.model_name || ' could not be read.'
  END AS reason,
  m.account_id,
  m.region,
  m.model_name,
  m.model_kms_key_arn AS kms_key_arn
FROM models m
LEFT JOIN model_errors me ON me.resource = m.arn
LEFT JOIN aws_kms_key k ON k.arn = m.model_kms_key_arn
LEFT JOIN public_statements p ON p.key_arn = k.arn

UNION ALL

SELECT
  account_id || '/' || region AS resource,
  'error' AS status,
  'The custom models of ' || account_id || '/' || region || ' could not be listed ('
    || min(operation || ' failed with ' || error_code || ': ' || message) || ').' AS reason,
  account_id, region, NULL, NULL
FROM bedrock_sql_errors
WHERE table_name = 'aws_bedrock_custom_model' AND resource IS NULL
GROUP BY account_id, region
