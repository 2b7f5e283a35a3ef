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
--
-- ok     the model's key is a customer-managed key (key_manager CUSTOMER)
-- alarm  no key (Bedrock-owned key), or an AWS managed key
-- info   the key lives in another account, which this scan cannot inspect
-- error  the model's details, its key, or its account/region listing could not be read
WITH
model_errors AS (  -- GetCustomModel failed: the model's key is unknown
  SELECT resource, min(operation || ' failed with ' || error_code) AS cause
  FROM bedrock_sql_errors
  WHERE table_name = 'aws_bedrock_custom_model' AND resource IS NOT NULL
    AND operation <> 'ListTagsForResource'  -- lost tags, not the details the verdict needs
  GROUP BY resource
),
key_listing_errors AS (  -- the keys of a whole account/region could not be listed
  SELECT account_id, region, min(operation || ' failed with ' || error_code) AS cause
  FROM bedrock_sql_errors
  WHERE table_name = 'aws_kms_key' AND resource IS NULL
  GROUP BY account_id, region
),
models AS (  -- models owned by the scanned account, with the account their key lives in
  SELECT m.*,
         -- field 5 of arn:partition:kms:region:ACCOUNT:key/id
         json_extract('["' || replace(m.model_kms_key_arn, ':', '","') || '"]', '$[4]') AS key_account
  FROM aws_bedrock_custom_model m
  WHERE m.owner_account_id IS NULL OR m.owner_account_id = m.account_id
)
SELECT
  m.arn AS resource,
  CASE
    WHEN me.resource IS NOT NULL THEN 'error'
    WHEN m.model_kms_key_arn IS NULL THEN 'alarm'
    WHEN k.key_manager = 'CUSTOMER' THEN 'ok'
    WHEN k.key_manager = 'AWS' THEN 'alarm'
    WHEN m.key_account <> m.account_id THEN 'info'
    ELSE 'error'
  END AS status,
  CASE
    WHEN me.resource IS NOT NULL THEN
      'The details of ' || m.model_name || ' could not be read (' || me.cause || '), so its key is unknown.'
    WHEN m.model_kms_key_arn IS NULL THEN
      m.model_name || ' is encrypted with the Bedrock-owned key, not a customer-managed key.'
    WHEN k.key_manager = 'CUSTOMER' THEN
      m.model_name || ' is encrypted with customer-managed key ' || k.title || ' (' || k.arn || ').'
    WHEN k.key_manager = 'AWS' THEN
      m.model_name || ' is encrypted with AWS managed key ' || k.title || ', not a customer-managed key.'
    WHEN m.key_account <> m.account_id THEN
      m.model_name || ' is encrypted with key ' || m.model_kms_key_arn || ' in account ' || m.key_account
        || ', which this scan cannot inspect.'
    WHEN kle.account_id IS NOT NULL THEN
      'The keys of ' || m.account_id || '/' || m.region || ' could not be listed (' || kle.cause
        || '), so the key of ' || m.model_name || ' is unknown.'
    ELSE
      m.model_name || ' names key ' || m.model_kms_key_arn
        || ', which could not be found or described; whether it is customer-managed is unknown.'
  END AS reason,
  m.account_id,
  m.region,
  m.model_name,
  m.model_kms_key_arn AS kms_key_arn,
  k.key_manager
FROM models m
LEFT JOIN model_errors me ON me.resource = m.arn
LEFT JOIN aws_kms_key k ON k.arn = m.model_kms_key_arn
LEFT JOIN key_listing_errors kle ON kle.account_id = m.account_id AND kle.region = m.region

UNION ALL

-- Account/regions whose models could not be listed: never a silent pass.
SELECT
  account_id || '/' || region AS resource,
  'error' AS status,
  'The custom models of ' || account_id || '/' || region || ' could not be listed ('
    || min(operation || ' failed with ' || error_code || ': ' || message) || ').' AS reason,
  account_id, region, NULL, NULL, NULL
FROM bedrock_sql_errors
WHERE table_name = 'aws_bedrock_custom_model' AND resource IS NULL
GROUP BY account_id, region
