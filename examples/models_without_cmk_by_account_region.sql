-- Custom models NOT encrypted with a customer-managed key, counted by account and region.
-- Bedrock-owned key (model_kms_key_arn IS NULL) and AWS managed keys both count.
SELECT m.account_id,
       m.region,
       count(*) AS models_without_cmk,
       sum(m.model_kms_key_arn IS NULL) AS bedrock_owned_key,
       sum(k.key_manager = 'AWS') AS aws_managed_key,
       group_concat(m.model_name, ', ') AS models
FROM aws_bedrock_custom_model m
LEFT JOIN aws_kms_key k ON k.arn = m.model_kms_key_arn
WHERE m.model_kms_key_arn IS NULL OR k.key_manager = 'AWS'
GROUP BY m.account_id, m.region
ORDER BY models_without_cmk DESC;
