-- id: bedrock_customization_job_in_vpc
-- title: Bedrock customization jobs run in a VPC
-- severity: medium
-- description: A customization job given a VPC configuration reaches its training and
--   validation data through your subnets and security groups (and S3 VPC endpoints),
--   so the data never crosses the public internet and network controls apply.
-- remediation: Re-run the job with vpcConfig (subnetIds and securityGroupIds), and an S3
--   gateway endpoint in that VPC for the training data bucket.
-- references: https://docs.aws.amazon.com/bedrock/latest/userguide/vpc-model-customization.html
--   https://docs.aws.amazon.com/securityhub/latest/userguide/sagemaker-controls.html
-- frameworks: nist-800-53-rev5: AC-4, SC-7
--
-- ok     the job has subnets in its VPC configuration
-- alarm  the job has no VPC configuration
-- skip   the job was stopped or failed: it trains no model
-- error  the job's details, or its account/region listing, could not be read
SELECT
  j.arn AS resource,
  CASE
    WHEN j.status IN ('Stopped', 'Stopping', 'Failed') THEN 'skip'
    WHEN je.resource IS NOT NULL THEN 'error'
    WHEN json_array_length(j.vpc_config, '$.subnetIds') > 0 THEN 'ok'
    ELSE 'alarm'
  END AS status,
  CASE
    WHEN j.status IN ('Stopped', 'Stopping', 'Failed') THEN
      'Job ' || j.job_name || ' is ' || j.status || ' and trains no model.'
    WHEN je.resource IS NOT NULL THEN
      'The details of job ' || j.job_name || ' could not be read (' || je.cause || '), so its network settings are unknown.'
    WHEN json_array_length(j.vpc_config, '$.subnetIds') > 0 THEN
      'Job ' || j.job_name || ' runs in a VPC (subnets ' || (
        SELECT group_concat(value, ', ') FROM json_each(j.vpc_config, '$.subnetIds')) || ').'
    ELSE
      'Job ' || j.job_name || ' (' || j.status || ') runs without a VPC configuration.'
  END AS reason,
  j.account_id,
  j.region,
  j.job_name,
  j.status AS job_status
FROM aws_bedrock_model_customization_job j
LEFT JOIN bedrock_resource_error je ON je.table_name = 'aws_bedrock_model_customization_job' AND je.resource = j.arn

UNION ALL

SELECT account_id || '/' || region, 'error',
       'The customization jobs of ' || account_id || '/' || region || ' could not be listed (' || detail || ').',
       account_id, region, NULL, NULL
FROM bedrock_listing_error
WHERE table_name = 'aws_bedrock_model_customization_job'
