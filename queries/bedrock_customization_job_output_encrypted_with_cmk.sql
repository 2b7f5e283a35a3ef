-- id: bedrock_customization_job_output_encrypted_with_cmk
-- title: Bedrock customization jobs encrypt their output model with a customer-managed key
-- severity: high
-- description: A customization job names the key its output model will be encrypted
--   with. A job without a customer-managed key produces tomorrow's non-compliant model;
--   catching it here is cheaper than re-training later.
-- remediation: Stop the job and start it again with customModelKmsKeyId set to a
--   customer-managed key whose key policy lets the job's service role use it; for a
--   completed job, re-create its model the same way (`bedrock-sql remediate`).
-- references: https://docs.aws.amazon.com/bedrock/latest/userguide/encryption-custom-job.html
--   https://docs.aws.amazon.com/securityhub/latest/userguide/bedrockagentcore-controls.html
--   https://www.iso.org/standard/27001
--   https://www.aicpa-cima.com/resources/download/2017-trust-services-criteria-with-revised-points-of-focus-2022
-- frameworks: nist-800-53-rev5: SC-12(2), SC-13, SC-28, SC-28(1);
--   iso-27001-2022: 8.24; soc2-tsc-2017: CC6.1
--
-- ok     the output model key is a customer-managed key
-- alarm  no key (Bedrock-owned key), or an AWS managed key
-- skip   the job was stopped or failed: it produces no model
-- info   the key lives in another account, which this scan cannot inspect
-- error  the job's details, its key, or its account/region listing could not be read
SELECT
  j.arn AS resource,
  CASE
    WHEN j.status IN ('Stopped', 'Stopping', 'Failed') THEN 'skip'
    WHEN je.resource IS NOT NULL THEN 'error'
    WHEN j.output_model_kms_key_arn IS NULL THEN 'alarm'
    WHEN k.key_manager = 'CUSTOMER' THEN 'ok'
    WHEN k.key_manager = 'AWS' THEN 'alarm'
    WHEN j.key_account <> j.account_id THEN 'info'
    ELSE 'error'
  END AS status,
  CASE
    WHEN j.status IN ('Stopped', 'Stopping', 'Failed') THEN
      'Job ' || j.job_name || ' is ' || j.status || ' and produces no model.'
    WHEN je.resource IS NOT NULL THEN
      'The details of job ' || j.job_name || ' could not be read (' || je.cause || '), so its output key is unknown.'
    WHEN j.output_model_kms_key_arn IS NULL THEN
      'Job ' || j.job_name || ' (' || j.status || ') encrypts its output model with the Bedrock-owned key.'
    WHEN k.key_manager = 'CUSTOMER' THEN
      'Job ' || j.job_name || ' encrypts its output model with customer-managed key ' || k.title || '.'
    WHEN k.key_manager = 'AWS' THEN
      'Job ' || j.job_name || ' encrypts its output model with AWS managed key ' || k.title || '.'
    WHEN j.key_account <> j.account_id THEN
      'Job ' || j.job_name || ' uses key ' || j.output_model_kms_key_arn || ' in account ' || j.key_account
        || ', which this scan cannot inspect.'
    ELSE
      'Job ' || j.job_name || ' names key ' || j.output_model_kms_key_arn
        || ', which could not be found or described; whether it is customer-managed is unknown.'
  END AS reason,
  j.account_id,
  j.region,
  j.job_name,
  j.status AS job_status,
  j.output_model_kms_key_arn AS kms_key_arn
FROM (SELECT *,  -- field 5 of arn:partition:kms:region:ACCOUNT:key/id
             json_extract('["' || replace(output_model_kms_key_arn, ':', '","') || '"]', '$[4]') AS key_account
      FROM aws_bedrock_model_customization_job) j
LEFT JOIN bedrock_resource_error je ON je.table_name = 'aws_bedrock_model_customization_job' AND je.resource = j.arn
LEFT JOIN aws_kms_key k ON k.arn = j.output_model_kms_key_arn

UNION ALL

SELECT account_id || '/' || region, 'error',
       'The customization jobs of ' || account_id || '/' || region || ' could not be listed (' || detail || ').',
       account_id, region, NULL, NULL, NULL
FROM bedrock_listing_error
WHERE table_name = 'aws_bedrock_model_customization_job'
