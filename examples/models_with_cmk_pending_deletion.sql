-- Custom models whose CMK is scheduled for deletion: when the waiting period ends the
-- model is crypto-shredded. Cancel the deletion or re-create the model with a new key.
SELECT m.account_id,
       m.region,
       m.model_name,
       k.title AS key,
       k.deletion_date,
       CAST(days_until(k.deletion_date) AS INTEGER) AS days_left
FROM aws_bedrock_custom_model m
JOIN aws_kms_key k ON k.arn = m.model_kms_key_arn
WHERE k.key_state = 'PendingDeletion'
ORDER BY k.deletion_date;
