-- id: bedrock_custom_model_cmk_rotation_enabled
-- title: Automatic rotation is on for the KMS key of each Bedrock custom model
-- severity: medium
-- description: Automatic key rotation limits how much data one key version protects and
--   is expected by most compliance frameworks for customer-managed keys. It applies to
--   symmetric keys with KMS-generated material only.
-- remediation: Turn on automatic rotation for the key (kms:EnableKeyRotation, optionally
--   with a rotation period).
-- references: https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html
--
-- ok     rotation is on
-- alarm  rotation is off
-- skip   Bedrock-owned key; AWS managed key (AWS rotates it); rotation does not apply
--        (imported key material, external or CloudHSM key stores, asymmetric or HMAC keys)
-- info   the key lives in another account, which this scan cannot inspect
-- error  the model, its key or its rotation status could not be read
WITH
model_errors AS (
  SELECT resource, min(operation || ' failed with ' || error_code) AS cause
  FROM bedrock_sql_errors
  WHERE table_name = 'aws_bedrock_custom_model' AND resource IS NOT NULL
    AND operation <> 'ListTagsForResource'  -- lost tags, not the details the verdict needs
  GROUP BY resource
),
key_errors AS (
  SELECT account_id, region, resource, min(operation || ' failed with ' || error_code) AS cause
  FROM bedrock_sql_errors
  WHERE table_name = 'aws_kms_key'
  GROUP BY account_id, region, resource
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
    WHEN k.origin <> 'AWS_KMS' OR k.key_spec <> 'SYMMETRIC_DEFAULT' THEN 'skip'
    WHEN k.key_rotation_enabled = 1 THEN 'ok'
    WHEN k.key_rotation_enabled = 0 THEN 'alarm'
    WHEN k.arn IS NULL AND m.key_account <> m.account_id THEN 'info'
    WHEN k.key_state = 'PendingDeletion' THEN 'skip'
    ELSE 'error'
  END AS status,
  CASE
    WHEN me.resource IS NOT NULL THEN
      'The details of ' || m.model_name || ' could not be read (' || me.cause || '), so its key is unknown.'
    WHEN m.model_kms_key_arn IS NULL THEN
      m.model_name || ' uses the Bedrock-owned key; there is no key of yours to rotate.'
    WHEN k.key_manager = 'AWS' THEN
      'Key ' || k.title || ' of ' || m.model_name || ' is AWS managed; AWS rotates it every year.'
    WHEN k.origin <> 'AWS_KMS' OR k.key_spec <> 'SYMMETRIC_DEFAULT' THEN
      'Automatic rotation does not apply to key ' || k.title || ' of ' || m.model_name
        || ' (origin ' || k.origin || ', spec ' || k.key_spec || ').'
    WHEN k.key_rotation_enabled = 1 THEN
      'Automatic rotation is on for key ' || k.title || ' of ' || m.model_name || '.'
    WHEN k.key_rotation_enabled = 0 THEN
      'Automatic rotation is off for key ' || k.title || ' of ' || m.model_name || '.'
    WHEN k.arn IS NULL AND m.key_account <> m.account_id THEN
      'Key ' || m.model_kms_key_arn || ' of ' || m.model_name || ' lives in account ' || m.key_account
        || ', which this scan cannot inspect.'
    WHEN k.key_state = 'PendingDeletion' THEN
      'Key ' || k.title || ' of ' || m.model_name || ' is pending deletion; rotation no longer applies.'
    ELSE
      'The rotation status of key ' || coalesce(k.title, m.model_kms_key_arn) || ' of ' || m.model_name
        || ' could not be read' || coalesce(' (' || ke.cause || ')', '') || '.'
  END AS reason,
  m.account_id,
  m.region,
  m.model_name,
  m.model_kms_key_arn AS kms_key_arn
FROM models m
LEFT JOIN model_errors me ON me.resource = m.arn
LEFT JOIN aws_kms_key k ON k.arn = m.model_kms_key_arn
LEFT JOIN key_errors ke  -- at most one per model (else it would be reported twice): the key's own, else the unit's
  ON ke.account_id = m.account_id AND ke.region = m.region
 AND ke.resource IS (SELECT e.resource FROM key_errors e
                     WHERE e.account_id = m.account_id AND e.region = m.region
                       AND (e.resource IS NULL OR e.resource = m.model_kms_key_arn)
                     ORDER BY e.resource IS NULL LIMIT 1)

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
