"""Runtime side of credlink: load API keys from AWS Secrets Manager (imports boto3, never cdktf)."""
