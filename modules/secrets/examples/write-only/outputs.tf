output "secret_arn" {
  description = "ARN of the secret: the service's API_KEYS_SECRET_ARN."
  value       = module.secrets.secret_arn
}

output "secret_version_id" {
  description = "Version id of the value Terraform wrote."
  value       = module.secrets.secret_version_id
}
