-- Every KMS key that protects at least one custom model, with its posture.
SELECT k.account_id,
       k.region,
       k.title AS key,
       k.key_manager,
       k.key_state,
       k.key_rotation_enabled,
       count(m.arn) AS models
FROM aws_kms_key k
JOIN aws_bedrock_custom_model m ON m.model_kms_key_arn = k.arn
GROUP BY k.arn
ORDER BY models DESC;
