-- id: bedrock_custom_model_cmk_usable
-- title: The KMS key of each Bedrock custom model is enabled
-- severity: high
-- description: A custom model is only usable while its KMS key is Enabled. A Disabled,
--   Unavailable or PendingImport key makes the model unusable now; a key PendingDeletion
--   will crypto-shred the model for good when its waiting period ends.
-- remediation: Re-enable the key (kms:EnableKey), cancel a scheduled deletion
--   (kms:CancelKeyDeletion) or restore the external key material. If the key is meant to
--   go, re-create the model with a new CMK first (`bedrock-sql remediate`).
-- references: https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html
--   https://docs.aws.amazon.com/bedrock/latest/userguide/encryption-custom-job.html
--
-- ok     the key is Enabled
-- alarm  the key is Disabled, PendingDeletion, PendingImport, Unavailable, or no longer exists
-- skip   the model uses the Bedrock-owned key (no key of yours to check)
-- info   the key lives in another account, which this scan cannot inspect
-- error  the model's details, its key, or its account/region listing could not be read
WITH
model_errors AS (
  SELECT resource, min(operation || ' failed with ' || error_code) AS cause
  FROM bedrock_sql_errors
  WHERE table_name = 'aws_bedrock_custom_model' AND resource IS NOT NULL
    AND operation <> 'ListTagsForResource'  -- lost tags, not the details the verdict needs
  GROUP BY resource
),
key_errors AS (  -- a key, or the keys of a whole account/region, could not be read
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
    WHEN k.key_state = 'Enabled' THEN 'ok'
    WHEN k.key_state IS NOT NULL THEN 'alarm'
    WHEN m.key_account <> m.account_id THEN 'info'
    WHEN ke.cause IS NOT NULL THEN 'error'
    ELSE 'alarm'
  END AS status,
  CASE
    WHEN me.resource IS NOT NULL THEN
      'The details of ' || m.model_name || ' could not be read (' || me.cause || '), so its key is unknown.'
    WHEN m.model_kms_key_arn IS NULL THEN
      m.model_name || ' uses the Bedrock-owned key; there is no key of yours to check.'
    WHEN k.key_state = 'Enabled' THEN
      'Key ' || k.title || ' of ' || m.model_name || ' is Enabled.'
    WHEN k.key_state = 'PendingDeletion' THEN
      'Key ' || k.title || ' of ' || m.model_name || ' is pending deletion on ' || coalesce(k.deletion_date, 'an unknown date')
        || '; the model will become permanently unusable.'
    WHEN k.key_state IS NOT NULL THEN
      'Key ' || k.title || ' of ' || m.model_name || ' is ' || k.key_state || ', so the model cannot be used.'
    WHEN m.key_account <> m.account_id THEN
      'Key ' || m.model_kms_key_arn || ' of ' || m.model_name || ' lives in account ' || m.key_account
        || ', which this scan cannot inspect.'
    WHEN ke.cause IS NOT NULL THEN
      'Key ' || m.model_kms_key_arn || ' of ' || m.model_name || ' could not be read (' || ke.cause || ').'
    ELSE
      'Key ' || m.model_kms_key_arn || ' of ' || m.model_name || ' no longer exists, so the model cannot be used.'
  END AS reason,
  m.account_id,
  m.region,
  m.model_name,
  m.model_kms_key_arn AS kms_key_arn,
  k.key_state
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
  account_id, region, NULL, NULL, NULL
FROM bedrock_sql_errors
WHERE table_name = 'aws_bedrock_custom_model' AND resource IS NULL
GROUP BY account_id, region
