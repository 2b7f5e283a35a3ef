-- Customer-managed keys whose policy grants the public, and why: each statement that
-- allows every principal ("*" in any form) with no condition naming accounts or
-- organizations. policy_public_statements() is the analysis the bundled
-- bedrock_custom_model_cmk_policy_not_public control uses; it reads any policy JSON.
SELECT k.account_id,
       k.region,
       k.title AS key,
       s.value ->> 'sid' AS sid,
       s.value ->> 'reason' AS reason
FROM aws_kms_key k,
     json_each(policy_public_statements(k.policy)) s
WHERE k.key_manager = 'CUSTOMER'
ORDER BY k.account_id, k.region, k.title;
