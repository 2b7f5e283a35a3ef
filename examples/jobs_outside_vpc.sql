-- Customization jobs that reach their training data outside a VPC, newest first.
SELECT account_id,
       region,
       job_name,
       status,
       training_data_config ->> '$.s3Uri' AS training_data,
       creation_time
FROM aws_bedrock_model_customization_job
WHERE vpc_config IS NULL OR json_array_length(vpc_config, '$.subnetIds') = 0
ORDER BY creation_time DESC;
