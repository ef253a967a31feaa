################################################################################
# State bucket
################################################################################

output "bucket" {
  description = "The state bucket's name: backend.bucket in envs/<env>.toml."
  value       = aws_s3_bucket.this.id
}

output "region" {
  description = "The state bucket's region: backend.region in envs/<env>.toml."
  value       = var.region
}

output "bucket_arn" {
  description = "The state bucket's ARN."
  value       = aws_s3_bucket.this.arn
}
